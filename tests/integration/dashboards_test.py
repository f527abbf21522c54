#!/usr/bin/env python3
"""Every dashboard query and every alert rule, evaluated by a real Prometheus.

    bench_mirror_tool produce ──> primary: <topic> ──flow──> dr: primary.<topic>
    kcat -G <group> (commits)        │          └──tap──> file:// archive
                                     │
    replicatord /metrics <──scrape every 1s── /usr/bin/prometheus (127.0.0.1:<free port>,
                                               rule_files: dashboards/alerts.yml)
                                                  ^
    this script ──/api/v1/query── every panel target of dashboards/*.json, every alert expr

What fails the test (exit 1, with the list):
  - `promtool check rules dashboards/alerts.yml` fails;
  - a dashboard is malformed (uid, schemaVersion, datasource variable, unknown template
    variable in a query);
  - a metric name used by a dashboard or a rule is not registered by replicatord's code
    (BuildX().Name("...") in the C++ sources) nor exposed on /metrics; this catches typos
    that a "0 while there are no errors" `or` fallback would hide;
  - a panel expression errors, or never returns a finite sample before the deadline;
  - a template variable's label_values() does not list the test's flow or tap;
  - an alert expression errors; ReplicatordRpoOverTarget and ReplicatordTapRpoOverTarget
    (rpo_target = 1ms) never return data; any other alert returns data in this healthy run
    (checked once everything else has data, so "quiet" is not just "nothing scraped yet");
  - /api/v1/rules does not show the group with every rule evaluated and healthy.

The run is bounded (about 90 s); waiting is "until the data is there or the deadline", never
an assertion about how long something took. Needs the test bed environment
(source .testbed/env), Debian's prometheus package (promtool, prometheus), kcat, python3-yaml
and bench_mirror_tool from the same build as replicatord.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import yaml
except ImportError:
    sys.exit("dashboards_test: needs PyYAML (Debian python3-yaml; scripts/install-deps)")

TOTAL_BUDGET_S = 90
# Values Grafana would give its built-in variables, sized for a 1 s scrape interval.
BUILTINS = {
    "__rate_interval": "10s",
    "__interval": "5s",
    "__interval_ms": "5000",
    "__range": "1m",
    "__range_s": "60",
    "__range_ms": "60000",
}
# Expressions that may legitimately return nothing in a healthy run, with the reason. They
# must still evaluate without error. Keep this minimal.
ALLOWED_EMPTY = {}
# Alerts that must fire on this run's data (rpo_target = 1ms).
ALERTS_WITH_DATA = {"ReplicatordRpoOverTarget", "ReplicatordTapRpoOverTarget"}
RULE_GROUP = "replicatord"
SCRAPE_JOB = "replicatord"  # ReplicatordDown selects up{job="replicatord"}


class Failure(Exception):
    pass


def log(msg):
    print(f"[dashboards_test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


# ---------------------------------------------------------------- dashboards and rules

def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def load_dashboards(source_dir, problems):
    """[(file, panel id, panel title, refId, expr)], {file: [(var name, metric, label)]}"""
    expected = {"overview.json": "replicatord-overview", "flow.json": "replicatord-flow",
                "taps.json": "replicatord-taps"}
    targets, variables = [], {}
    for name, uid in expected.items():
        path = os.path.join(source_dir, "dashboards", name)
        with open(path) as fh:
            d = json.load(fh)
        if d.get("uid") != uid:
            problems.append(f"{name}: uid is {d.get('uid')!r}, want {uid!r}")
        if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
            problems.append(f"{name}: schemaVersion {d.get('schemaVersion')!r} is not >= 36")
        tvars = d.get("templating", {}).get("list", [])
        if not any(v.get("type") == "datasource" and v.get("query") == "prometheus"
                   and v.get("name") == "datasource" for v in tvars):
            problems.append(f"{name}: no 'datasource' template variable of type prometheus")
        variables[name] = []
        for v in tvars:
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(\w+)\s*\)\s*",
                             q or "")
            if not m:
                problems.append(f"{name}: variable {v.get('name')}: unsupported query {q!r}")
                continue
            variables[name].append((v["name"], m.group(1), m.group(2)))
        ids = set()
        for p in walk_panels(d.get("panels", [])):
            title = p.get("title", "?")
            if p.get("id") in ids:
                problems.append(f"{name}: panel id {p.get('id')} used twice")
            ids.add(p.get("id"))
            if p.get("type") == "row":
                continue
            if (p.get("datasource") or {}).get("uid") != "${datasource}":
                problems.append(f"{name}: panel '{title}' does not use the ${{datasource}} "
                                f"variable")
            if not p.get("targets"):
                problems.append(f"{name}: panel '{title}' has no query")
            for t in p.get("targets", []):
                if not t.get("expr"):
                    problems.append(f"{name}: panel '{title}' {t.get('refId')}: empty expr")
                    continue
                targets.append((name, p.get("id"), title, t.get("refId", "?"), t["expr"]))
    return targets, variables


def substitute(expr, values):
    """Replaces $name, ${name} and [[name]]; raises on a variable it does not know."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        name = name.split(":")[0]  # ${var:format}
        if name not in values:
            raise Failure(f"unknown template variable ${name} in {expr!r}")
        return values[name]
    return re.sub(r"\$\{([\w:]+)\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)


def registered_metric_names(source_dir):
    """Names passed to prometheus-cpp's Build*().Name("...") in the C++ sources."""
    names = set()
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build")) and d != "tests"]
        for f in files:
            if f.endswith(".cpp"):
                with open(os.path.join(root, f), errors="replace") as fh:
                    names |= set(re.findall(r'\.Name\("([a-zA-Z_:][a-zA-Z0-9_:]*)"\)',
                                            fh.read()))
    return names


def metric_names(expr):
    names = set(re.findall(r"\b(replicatord_[a-z0-9_]+)", expr))
    names |= {"up"} if re.search(r"\bup\{", expr) else set()
    return names


# ---------------------------------------------------------------- processes

class Procs:
    def __init__(self):
        self.items = []  # (name, Popen)

    def start(self, name, argv, logfile, **kw):
        fh = open(logfile, "ab")
        p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             **kw)
        fh.close()
        self.items.append((name, p))
        return p

    def stop_all(self):
        for name, p in reversed(self.items):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(self.items):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM for 10 s; killing it")
                p.kill()
                p.wait()


def tail(path, n=30):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------- Prometheus API

class Prom:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr):
        """(ok, result list or error text)"""
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = json.loads(http_get(url))
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read().decode())
            except ValueError:
                return False, f"HTTP {e.code}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            return False, f"request failed: {e}"
        if body.get("status") != "success":
            return False, f"{body.get('errorType')}: {body.get('error')}"
        data = body["data"]
        if data["resultType"] == "scalar":
            return True, [{"metric": {}, "value": data["result"]}]
        if data["resultType"] != "vector":
            return False, f"unexpected result type {data['resultType']}"
        return True, data["result"]

    def get(self, path):
        return json.loads(http_get(self.base + path))


def finite_samples(result):
    out = []
    for s in result:
        try:
            v = float(s["value"][1])
        except (KeyError, IndexError, ValueError):
            continue
        if math.isfinite(v):
            out.append(v)
    return out


# ---------------------------------------------------------------- the run

def main():
    started = time.monotonic()
    deadline = started + TOTAL_BUDGET_S - 12  # leave time to stop everything
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--replicatord", required=True)
    ap.add_argument("--tool", help="bench_mirror_tool (default: <build>/bench/bench_mirror_tool "
                                   "next to <build>/app/replicatord)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    src = os.path.abspath(a.source_dir)
    rpl = os.path.abspath(a.replicatord)
    tool = a.tool or os.path.join(os.path.dirname(os.path.dirname(rpl)), "bench",
                                  "bench_mirror_tool")
    env = {k: os.environ.get(k) for k in ("PRIMARY_BOOTSTRAP", "DR_BOOTSTRAP")}
    missing = [k for k, v in env.items() if not v]
    if missing:
        print(f"FAIL: {', '.join(missing)} not set; run `source {src}/.testbed/env` first",
              file=sys.stderr)
        return 1
    need = {"prometheus": shutil.which("prometheus"), "promtool": shutil.which("promtool"),
            "kcat": shutil.which("kcat"), "replicatord": rpl if os.access(rpl, os.X_OK) else None,
            "bench_mirror_tool": tool if os.access(tool, os.X_OK) else None}
    absent = [k for k, v in need.items() if not v]
    if absent:
        print(f"FAIL: not found: {', '.join(absent)} (scripts/install-deps installs "
              f"prometheus/promtool/kcat; build the replicatord and bench_mirror_tool targets)",
              file=sys.stderr)
        return 1

    passed, failed = [], []  # (what, detail)

    def check(ok, what, detail=""):
        (passed if ok else failed).append((what, detail))
        if not ok:
            log(f"FAILED: {what}{': ' + detail if detail else ''}")

    # Static checks first: they need no processes.
    alerts_path = os.path.join(src, "dashboards", "alerts.yml")
    r = subprocess.run([need["promtool"], "check", "rules", alerts_path], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "promtool check rules dashboards/alerts.yml",
          (r.stdout + r.stderr).strip())
    with open(alerts_path) as fh:
        rules_doc = yaml.safe_load(fh)
    alerts = [(rule["alert"], rule["expr"]) for g in rules_doc["groups"] for rule in g["rules"]
              if "alert" in rule]
    problems = []
    targets, variables = load_dashboards(src, problems)
    for p in problems:
        check(False, "dashboard structure", p)
    log(f"{len(targets)} panel queries in 3 dashboards, {len(alerts)} alert rules")

    tmp = tempfile.mkdtemp(prefix="rpl-dashboards-")
    suffix = f"{os.getpid()}-{int(time.time() * 1000) % 100000000}"
    topic, group = f"dash-{suffix}", f"dash-group-{suffix}"
    flow, tap = f"dash-flow-{suffix}", f"dash-tap-{suffix}"
    primary, dr = env["PRIMARY_BOOTSTRAP"], env["DR_BOOTSTRAP"]
    procs = Procs()
    created = []
    try:
        r = subprocess.run([tool, "create", primary, topic, "3"], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise Failure(f"creating topic {topic} on primary: {r.stderr.strip()}")
        created.append((primary, topic))
        # About 400 records/s for far longer than the test runs; stopped in `finally`.
        procs.start("producer", [tool, "produce", primary, topic, "--records", "10000000",
                                 "--size", "300", "--rate", "400"],
                    os.path.join(tmp, "producer.log"))

        archive = os.path.join(tmp, "archive")
        os.makedirs(archive)
        cfg = f"""[daemon]
state_dir = "{tmp}/state"
admin_listen = "127.0.0.1:0"
log_level = "info"

[clusters.primary]
bootstrap = "{primary}"

[clusters.dr]
bootstrap = "{dr}"

[[flow]]
name = "{flow}"
source = "primary"
target = "dr"
topics = ["{topic}"]
groups = ["{group}"]
refresh_interval = "1s"
checkpoint_interval = "1s"
rpo_target = "1ms"          # impossible on purpose: ReplicatordRpoOverTarget must fire

[[tap]]
name = "{tap}"
source = "primary"
topics = ["{topic}"]
storage = "file://{archive}"
segment_max_interval = "1s"
group_snapshot_interval = "1s"
rpo_target = "1ms"          # ReplicatordTapRpoOverTarget must fire
"""
        cfg_path = os.path.join(tmp, "replicatord.toml")
        with open(cfg_path, "w") as fh:
            fh.write(cfg)
        created.append((dr, f"primary.{topic}"))
        rpl_log = os.path.join(tmp, "replicatord.log")
        daemon = procs.start("replicatord", [rpl, "--config", cfg_path], rpl_log)
        admin_port = None
        while admin_port is None and time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise Failure(f"replicatord exited with {daemon.returncode}:\n{tail(rpl_log)}")
            m = re.search(r"admin endpoint on http://[^:\s\"]+:(\d+)", tail(rpl_log, 1000))
            if m:
                admin_port = int(m.group(1))
            else:
                time.sleep(0.1)
        if admin_port is None:
            raise Failure(f"replicatord never logged its admin endpoint:\n{tail(rpl_log)}")
        log(f"replicatord admin endpoint on 127.0.0.1:{admin_port}")

        prom_cfg = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [alerts_path],
            "scrape_configs": [{"job_name": SCRAPE_JOB, "metrics_path": "/metrics",
                                "static_configs": [{"targets": [f"127.0.0.1:{admin_port}"]}]}],
        }
        prom_cfg_path = os.path.join(tmp, "prometheus.yml")
        with open(prom_cfg_path, "w") as fh:
            yaml.safe_dump(prom_cfg, fh)
        prom, prom_proc, prom_log = None, None, os.path.join(tmp, "prometheus.log")
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            port = free_port()
            prom_proc = procs.start("prometheus", [
                need["prometheus"], f"--config.file={prom_cfg_path}",
                f"--storage.tsdb.path={tmp}/tsdb", f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn"], prom_log)
            while time.monotonic() < deadline and prom_proc.poll() is None:
                try:
                    http_get(f"http://127.0.0.1:{port}/-/ready", timeout=1)
                    prom = Prom(port)
                    break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.2)
            if prom is not None:
                break
        if prom is None:
            raise Failure(f"prometheus did not become ready:\n{tail(prom_log)}")
        log(f"prometheus ready on 127.0.0.1:{prom.base.rsplit(':', 1)[1]}")

        # A consumer group with committed offsets on the source, idle on the target: the
        # flow checkpoints it and syncs its offsets. Wait until it has something to read.
        while time.monotonic() < deadline:
            ok, res = prom.query(f'sum(replicatord_records_replicated_total{{flow="{flow}"}})')
            if ok and finite_samples(res) and finite_samples(res)[0] >= 100:
                break
            time.sleep(0.5)
        r = subprocess.run(["kcat", "-b", primary, "-G", group, "-X",
                            "auto.offset.reset=earliest", "-c", "100", "-q", topic],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        check(r.returncode == 0, f"kcat -G {group} consumed and committed 100 records",
              r.stderr.strip()[-500:])

        # Every name a query uses must be a family replicatord registers, data or not (an
        # error counter has no series until the first error, so /metrics alone cannot say).
        exposition = http_get(f"http://127.0.0.1:{admin_port}/metrics")
        declared = registered_metric_names(src) | {"up"}
        declared |= set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
        used = set()
        for *_, expr in targets:
            used |= metric_names(expr)
        for _, expr in alerts:
            used |= metric_names(expr)
        base = {re.sub(r"_(bucket|sum|count)$", "", n) if n not in declared else n for n in used}
        unknown = sorted(n for n in base if n not in declared)
        check(bool(declared - {"up"}) and not unknown,
              f"{len(used)} metric names used by dashboards and rules are registered by "
              f"replicatord's code",
              "not declared: " + ", ".join(unknown))

        # Template variables: label_values(metric, label) must list the test's flow/tap.
        values = dict(BUILTINS)
        mine = {"flow": flow, "tap": tap}
        pending_vars = {}
        for fname, vs in variables.items():
            for vname, metric, label in vs:
                if vname not in mine:
                    check(False, f"{fname}: variable ${vname}", "the test has no value for it")
                    continue
                values[vname] = mine[vname]
                pending_vars[(fname, vname)] = (metric, label)

        # Substitute, then evaluate until everything has data or the deadline passes.
        pending = {}  # key -> (description, substituted expr, expr as written)
        for fname, pid, title, ref, expr in targets:
            try:
                e = substitute(expr, values)
            except Failure as ex:
                check(False, f"{fname} '{title}' {ref}", str(ex))
                continue
            pending[("panel", fname, pid, ref)] = (f"{fname} '{title}' {ref}: {e}", e, expr)
        for name, expr in alerts:
            if name in ALERTS_WITH_DATA:
                pending[("alert", name)] = (f"alert {name}: {expr}", expr, expr)
        last_error, last_empty = {}, {}
        rules_ok, rules_detail = False, "no answer from /api/v1/rules"
        while True:
            for key, (desc, e, _) in list(pending.items()):
                ok, res = prom.query(e)
                if not ok:
                    last_error[key] = res
                    if "bad_data" in res or "parse error" in res:
                        del pending[key]  # a syntax error does not go away by waiting
                        check(False, desc, res)
                    continue
                if finite_samples(res):
                    del pending[key]
                    last_error.pop(key, None)
                    check(True, desc)
                else:
                    last_empty[key] = "empty result" if not res else "only NaN/Inf samples"
            for (fname, vname), (metric, label) in list(pending_vars.items()):
                try:
                    got = prom.get(f"/api/v1/label/{label}/values?"
                                   + urllib.parse.urlencode({"match[]": metric}))["data"]
                except (urllib.error.URLError, OSError, ValueError, KeyError):
                    continue
                if mine[vname] in got:
                    del pending_vars[(fname, vname)]
                    check(True, f"{fname}: ${vname} = label_values({metric}, {label}) lists "
                                f"{mine[vname]}")
            if not rules_ok:
                try:
                    groups = prom.get("/api/v1/rules")["data"]["groups"]
                    g = [x for x in groups if x["name"] == RULE_GROUP]
                    if not g:
                        rules_detail = f"group {RULE_GROUP} not loaded"
                    else:
                        rs = g[0]["rules"]
                        bad = [f"{x['name']}: health {x['health']} {x.get('lastError', '')}"
                               for x in rs if x.get("health") != "ok"]
                        rules_ok = not bad and len(rs) == len(alerts)
                        rules_detail = "; ".join(bad) or f"{len(rs)} rules, {len(alerts)} in file"
                except (urllib.error.URLError, OSError, ValueError, KeyError) as ex:
                    rules_detail = str(ex)
            if (not pending and not pending_vars and rules_ok) or time.monotonic() > deadline:
                break
            if daemon.poll() is not None:
                raise Failure(f"replicatord exited with {daemon.returncode}:\n{tail(rpl_log)}")
            time.sleep(1)

        check(rules_ok, f"/api/v1/rules: group {RULE_GROUP} loaded, every rule evaluated with "
                        f"health ok", rules_detail)
        for (fname, vname), (metric, label) in pending_vars.items():
            check(False, f"{fname}: ${vname} = label_values({metric}, {label})",
                  f"{mine[vname]} never listed")
        for key, (desc, e, raw) in pending.items():
            allowed = ALLOWED_EMPTY.get(raw)
            if key in last_error:
                check(False, desc, last_error[key])
            elif allowed:
                check(True, desc, f"allowed to be empty: {allowed}")
            else:
                check(False, desc, f"{last_empty.get(key, 'empty result')} until the deadline")

        # The rules that must stay quiet in a healthy run. Evaluated once all data is in (or
        # at the deadline), so that "empty" is not just "nothing scraped yet"; each one's
        # inputs exist (checked above through the panels, and `up` here).
        ok, res = prom.query(f'up{{job="{SCRAPE_JOB}"}}')
        check(ok and finite_samples(res) == [1.0], f'up{{job="{SCRAPE_JOB}"}} is 1',
              str(res))
        for name, expr in alerts:
            if name in ALERTS_WITH_DATA:
                continue
            ok, res = prom.query(expr)
            check(ok and not res, f"alert {name} evaluates and is quiet in a healthy run: {expr}",
                  res if not ok else f"returned {json.dumps(res)[:400]}")
    except Failure as ex:
        check(False, "setup", str(ex))
    finally:
        procs.stop_all()
        for bootstrap, t in created:
            subprocess.run([tool, "delete", bootstrap, re.escape(t).replace("\\-", "-")],
                           capture_output=True, timeout=30)
        if failed:
            for name in ("replicatord", "prometheus", "producer"):
                text = tail(os.path.join(tmp, f"{name}.log"), 15)
                if text:
                    print(f"--- last lines of {name}.log ---\n{text}", end="")
        if a.keep or failed:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    p_panels = sum(1 for x in passed if ".json '" in x[0])
    f_panels = sum(1 for x in failed if ".json '" in x[0])
    p_alerts = sum(1 for x in passed if x[0].startswith("alert "))
    f_alerts = sum(1 for x in failed if x[0].startswith("alert "))
    print()
    for what, _ in passed:
        print(f"  ok    {what}")
    for what, detail in failed:
        print(f"  FAIL  {what}\n        {detail}")
    print(f"panel queries: {p_panels} passed, {f_panels} failed (of {len(targets)})")
    print(f"alert rules:   {p_alerts} passed, {f_alerts} failed (of {len(alerts)})")
    print(f"all checks:    {len(passed)} passed, {len(failed)} failed "
          f"in {time.monotonic() - started:.0f} s")
    if ALLOWED_EMPTY:
        print("allowed to be empty: " + "; ".join(f"{k} ({v})" for k, v in ALLOWED_EMPTY.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
