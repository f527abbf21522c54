// replicatorctl's commands that live outside replicatorctl.cpp, each in its
// own file. Every function takes the full argv (argv[1] is the command name)
// and returns the process exit code (app/plan.h's exit_* constants, plus 4
// for "refused" and 5 for "a drill or verify found a problem").
#pragma once

namespace rpl::app {

// replicatorctl backup list|describe|verify ... (app/ctl_backup.cpp)
[[nodiscard]] int ctl_backup(int argc, char** argv);
// replicatorctl restore --config R.toml [--dry-run] ... (app/ctl_backup.cpp)
[[nodiscard]] int ctl_restore(int argc, char** argv);
// replicatorctl status [--admin URL] [--watch] [--json] (app/ctl_status.cpp)
[[nodiscard]] int ctl_status(int argc, char** argv);
// replicatorctl drill --config F (--flow NAME | --tap NAME --cluster C) ...
// (app/ctl_drill.cpp; the archive drill is in app/drill_tap.cpp)
[[nodiscard]] int ctl_drill(int argc, char** argv);

}  // namespace rpl::app
