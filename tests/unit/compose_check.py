#!/usr/bin/env python3
"""Checks docker-compose.yml and everything it names, without a Docker engine.

ctest: unit/docker_compose_names_only_files_ports_and_configs_that_exist

    python3 tests/unit/compose_check.py --source-dir DIR --replicatord PATH

No Docker engine runs in CI, so the compose file is never started there. What
can be checked without one is checked here:

  docker-compose.yml --+-- services, depends_on, ports, volumes, configs
                       +-- build: .  --> Dockerfile (FROM, targets, libraries)
                       +-- replicatord: conf/examples/compose.toml
                       |     replicatord --check --offline, with the
                       |     environment compose gives the container
                       +-- prometheus: dashboards/prometheus.yml + alerts.yml
                       |     promtool check config, in the container's layout
                       +-- grafana: provisioning + dashboards/*.json

Every check prints one line (ok / FAIL / skip) and the run ends with
"N passed, N failed"; the exit status is 1 if anything failed. Needs python3
with PyYAML, promtool (Debian package prometheus) and, for the runtime library
check, readelf and dpkg (skipped when missing). `docker compose config -q` runs
only when `docker compose` works on this machine.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

try:
    import yaml
except ImportError:  # pragma: no cover - reported, not hidden
    print("FAIL python3-yaml (PyYAML) is not installed: apt-get install python3-yaml")
    print("0 passed, 1 failed")
    sys.exit(1)

# The services the issue asks for; each must be in the compose file.
REQUIRED_SERVICES = [
    "kafka-primary",
    "kafka-dr",
    "minio",
    "minio-init",
    "replicatord",
    "prometheus",
    "grafana",
]
# Dashboards and rules the compose file serves (written in dashboards/).
REQUIRED_DASHBOARD_FILES = ["overview.json", "flow.json", "taps.json", "alerts.yml"]
# The replicatord image's config path (Dockerfile CMD) and the environment
# variable replicatord reads when [daemon] admin_token is unset.
ADMIN_TOKEN_ENV = "REPLICATORD_ADMIN_TOKEN"
# Libraries debian:12-slim already has (the Dockerfile need not install them).
SLIM_BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "libzstd1"}
# A dependency condition Compose knows.
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {name}" + (f": {detail}" if detail else ""))
        else:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
        return ok

    def skip(self, name, why):
        self.skipped += 1
        print(f"skip  {name}: {why}")


# --------------------------------------------------------------------- compose


def interpolate(value, env=None):
    """Compose variable interpolation with the file's defaults.

    ${VAR:-default} and ${VAR-default} give the default (the values a user
    gets with nothing set, which is what the check is about); ${VAR} and $VAR
    take `env` (empty when absent); $$ is a literal $.
    """
    env = env or {}

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("plain")
        default = m.group("default")
        if default is not None:
            return default
        return env.get(name, "")

    pattern = re.compile(
        r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}"
        r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
    )
    return pattern.sub(sub, value)


def env_of(service):
    """A service's environment as a dict of interpolated strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        env = out
    return {str(k): interpolate("" if v is None else str(v)) for k, v in env.items()}


def mounts_of(service):
    """(type, source, target, read_only) for every volume entry of a service."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            kind = v.get("type", "volume")
            out.append((kind, v.get("source"), v.get("target"), bool(v.get("read_only"))))
            continue
        parts = str(v).split(":")
        if len(parts) == 1:  # anonymous volume
            out.append(("volume", None, parts[0], False))
            continue
        source, target = parts[0], parts[1]
        ro = len(parts) > 2 and "ro" in parts[2].split(",")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append((kind, source, target, ro))
    return out


def published_ports(service):
    """(host_ip, host_port, container_port) for every published port."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), str(p.get("published", "")), str(p.get("target"))))
            continue
        spec = str(p).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            out.append(("", parts[0], parts[1]))
        else:
            out.append(("", "", parts[0]))  # container port only: random host port
    return out


def depends_of(service):
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {d: "service_started" for d in dep}
    return {k: (v or {}).get("condition", "service_started") for k, v in dep.items()}


def host_path(source_dir, source):
    return os.path.normpath(os.path.join(source_dir, os.path.expanduser(source)))


def bind_source_for(source_dir, service, target):
    """Host path bind-mounted at `target` in `service`, or None."""
    for kind, src, tgt, _ in mounts_of(service):
        if kind == "bind" and tgt == target:
            return host_path(source_dir, src)
    return None


def check_compose(c, source_dir, compose):
    services = compose.get("services") or {}
    c.check(
        "compose: services the issue names",
        all(s in services for s in REQUIRED_SERVICES),
        ", ".join(s if s in services else f"{s} MISSING" for s in REQUIRED_SERVICES),
    )

    # depends_on: every dependency is a service; conditions are known, and
    # service_healthy waits on a service that has a healthcheck.
    bad = []
    for name, svc in services.items():
        for dep, cond in depends_of(svc).items():
            if dep not in services:
                bad.append(f"{name} depends on unknown service {dep}")
            elif cond not in DEPENDS_CONDITIONS:
                bad.append(f"{name} -> {dep}: unknown condition {cond}")
            elif cond == "service_healthy" and "healthcheck" not in services[dep]:
                bad.append(f"{name} waits for {dep} healthy, but {dep} has no healthcheck")
    c.check(
        "compose: depends_on names existing services",
        not bad,
        "; ".join(bad) or f"{sum(len(depends_of(s)) for s in services.values())} dependencies",
    )

    # Mounts: bind sources exist in the repository, named volumes are declared.
    declared_volumes = set((compose.get("volumes") or {}).keys())
    binds, problems = [], []
    for name, svc in services.items():
        for kind, src, tgt, _ in mounts_of(svc):
            if kind == "bind":
                if not src.startswith("."):
                    problems.append(f"{name}: bind source {src} is not relative to the repository")
                    continue
                path = host_path(source_dir, src)
                rel = os.path.relpath(path, source_dir)
                if rel.startswith(".."):
                    problems.append(f"{name}: {src} points outside the repository")
                elif not os.path.exists(path):
                    problems.append(f"{name}: {src} does not exist")
                else:
                    binds.append(rel)
            elif kind == "volume" and src is not None and src not in declared_volumes:
                problems.append(f"{name}: volume {src} is not declared under volumes:")
    c.check(
        "compose: every mounted file and volume exists",
        not problems,
        "; ".join(problems) or ", ".join(binds),
    )

    # configs/secrets used by services are declared; file sources exist.
    problems = []
    for kind in ("configs", "secrets"):
        declared = compose.get(kind) or {}
        for dname, d in declared.items():
            if "file" in d and not os.path.exists(host_path(source_dir, d["file"])):
                problems.append(f"{kind}.{dname}: file {d['file']} does not exist")
            if not any(k in d for k in ("file", "content", "environment", "external")):
                problems.append(f"{kind}.{dname}: no file, content or environment")
        for name, svc in services.items():
            for ref in svc.get(kind) or []:
                src = ref["source"] if isinstance(ref, dict) else ref
                if src not in declared:
                    problems.append(f"{name}: {kind} {src} is not declared")
    c.check("compose: configs and secrets are declared", not problems, "; ".join(problems))

    # Host ports: each published once.
    seen, dup = {}, []
    for name, svc in services.items():
        for ip, host, _ in published_ports(svc):
            if not host:
                continue
            key = (ip, host)
            if key in seen:
                dup.append(f"{host} by {seen[key]} and {name}")
            seen[key] = name
    c.check(
        "compose: no host port published twice",
        not dup,
        "; ".join(dup) or ", ".join(f"{h}->{n}" for (_, h), n in sorted(seen.items())),
    )

    # Images other than the one built here are pinned to a tag.
    unpinned = [
        f"{n}: {s['image']}"
        for n, s in services.items()
        if "image" in s and "build" not in s and (":" not in s["image"] or s["image"].endswith(":latest"))
    ]
    c.check("compose: images are pinned", not unpinned, "; ".join(unpinned))

    # Build context and Dockerfile of every built service.
    problems, built = [], []
    for name, svc in services.items():
        b = svc.get("build")
        if b is None:
            continue
        ctx = b if isinstance(b, str) else b.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(b, str) else b.get("dockerfile", "Dockerfile")
        ctx_path = host_path(source_dir, ctx)
        if not os.path.isdir(ctx_path):
            problems.append(f"{name}: build context {ctx} is not a directory")
        elif not os.path.isfile(os.path.join(ctx_path, dockerfile)):
            problems.append(f"{name}: {ctx}/{dockerfile} does not exist")
        else:
            built.append(f"{name} <- {os.path.join(ctx, dockerfile)}")
    c.check("compose: build context and Dockerfile exist", not problems and built,
            "; ".join(problems) or ", ".join(built))
    return services


def kafka_listener_ports(env):
    """{listener name: port} from KAFKA_LISTENERS (or advertised listeners)."""
    out = {}
    for item in env.split(","):
        m = re.match(r"\s*([A-Za-z_]+)://[^:]*:(\d+)\s*$", item)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def check_kafka(c, source_dir, services):
    testbed = open(os.path.join(source_dir, "scripts", "testbed")).read()
    m = re.search(r"KAFKA_VERSION=\$\{RPL_KAFKA_VERSION:-([0-9.]+)\}", testbed)
    testbed_version = m.group(1) if m else None
    for name in ("kafka-primary", "kafka-dr"):
        svc = services.get(name)
        if svc is None:
            continue
        image = svc.get("image", "")
        c.check(
            f"{name}: apache/kafka at the test bed's Kafka version",
            testbed_version is not None and image == f"apache/kafka:{testbed_version}",
            f"image {image}, test bed {testbed_version}",
        )
        env = env_of(svc)
        required = [
            "KAFKA_NODE_ID",
            "KAFKA_PROCESS_ROLES",
            "KAFKA_LISTENERS",
            "KAFKA_ADVERTISED_LISTENERS",
            "KAFKA_CONTROLLER_QUORUM_VOTERS",
            "KAFKA_CONTROLLER_LISTENER_NAMES",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        ]
        missing = [k for k in required if k not in env]
        single_node = all(
            env.get(k) == "1"
            for k in (
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
            )
        )
        c.check(
            f"{name}: KRaft single-node settings",
            not missing and single_node and "controller" in env.get("KAFKA_PROCESS_ROLES", ""),
            f"missing {missing}" if missing else "replication factors 1, broker+controller",
        )
        # Every advertised listener is a listener, and every published port
        # lands on a listener whose advertised port is the published one.
        listeners = kafka_listener_ports(env.get("KAFKA_LISTENERS", ""))
        advertised = kafka_listener_ports(env.get("KAFKA_ADVERTISED_LISTENERS", ""))
        problems = [f"advertised {l} is not in KAFKA_LISTENERS" for l in advertised if l not in listeners]
        protocols = {
            p.split(":")[0] for p in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",")
        }
        problems += [f"listener {l} has no security protocol" for l in listeners if l not in protocols]
        for _, host, container in published_ports(svc):
            names = [l for l, p in listeners.items() if p == container]
            if not names:
                problems.append(f"published container port {container} is no listener")
            elif advertised.get(names[0]) != host:
                problems.append(
                    f"host port {host} reaches listener {names[0]}, advertised as port "
                    f"{advertised.get(names[0])}"
                )
        c.check(f"{name}: listeners, advertised listeners and ports agree", not problems,
                "; ".join(problems) or f"listeners {listeners}, advertised {advertised}")
        hc = " ".join(svc.get("healthcheck", {}).get("test", []))
        c.check(f"{name}: healthcheck asks the broker", "kafka-broker-api-versions.sh" in hc, hc)


# --------------------------------------------------------------- replicatord


def is_loopback(host):
    return host in ("localhost", "::1") or host.startswith("127.")


def split_host_port(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), port


def check_replicatord(c, source_dir, services, replicatord_bin, dockerfile_cmd_config):
    svc = services.get("replicatord")
    if svc is None:
        return None
    config_target = dockerfile_cmd_config or "/etc/replicatord/replicatord.toml"
    config_path = bind_source_for(source_dir, svc, config_target)
    if not c.check(
        "replicatord: config mounted where the image reads it",
        config_path is not None and os.path.isfile(config_path),
        f"{config_target} <- {os.path.relpath(config_path, source_dir) if config_path else 'nothing'}",
    ):
        return None
    c.check(
        "replicatord: config mounted from conf/examples/",
        os.path.dirname(os.path.relpath(config_path, source_dir)) == os.path.join("conf", "examples"),
        os.path.relpath(config_path, source_dir),
    )
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    env = env_of(svc)
    daemon = cfg.get("daemon", {})

    # Clusters: every bootstrap address is a Kafka service's PLAINTEXT listener.
    problems = []
    for alias, cl in cfg.get("clusters", {}).items():
        for addr in cl.get("bootstrap", "").split(","):
            host, port = split_host_port(addr.strip())
            target = services.get(host)
            if target is None:
                problems.append(f"clusters.{alias}: {host} is not a compose service")
                continue
            ports = kafka_listener_ports(env_of(target).get("KAFKA_ADVERTISED_LISTENERS", ""))
            if port not in ports.values():
                problems.append(f"clusters.{alias}: {host} advertises no listener on port {port}")
            if host not in depends_of(svc):
                problems.append(f"clusters.{alias}: replicatord does not depend on {host}")
    c.check("replicatord: cluster addresses are compose Kafka listeners", not problems,
            "; ".join(problems) or ", ".join(
                f"{a}={cl.get('bootstrap')}" for a, cl in cfg.get("clusters", {}).items()))

    # The environment the config needs: S3 keys for s3:// taps without keys in
    # the file, the admin token for a non-loopback admin_listen without one.
    needed = set()
    s3_taps = [t for t in cfg.get("tap", []) if str(t.get("storage", "")).startswith("s3://")]
    if any("s3_access_key" not in t for t in s3_taps):
        needed |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    admin_listen = daemon.get("admin_listen", "127.0.0.1:9464")
    admin_host, admin_port = split_host_port(admin_listen)
    if not is_loopback(admin_host) and not daemon.get("admin_token"):
        needed.add(ADMIN_TOKEN_ENV)
    missing = sorted(k for k in needed if not env.get(k))
    c.check("replicatord: environment has what the config leaves to it", not missing,
            f"missing {missing}" if missing else ", ".join(sorted(needed)) or "nothing needed")
    c.check("replicatord: no secrets in the mounted config",
            "admin_token" not in daemon and all("s3_secret_key" not in t for t in cfg.get("tap", [])),
            "admin_token and s3_secret_key come from the environment")

    # S3 taps: the endpoint is the MinIO service, the bucket is made by
    # minio-init, the keys are MinIO's.
    problems = []
    minio_env = env_of(services.get("minio", {}))
    for t in s3_taps:
        url = t["storage"]
        bucket = url[5:].split("/")[0].split("?")[0]
        m = re.search(r"[?&]endpoint=([^&]+)", url)
        ep = m.group(1) if m else ""
        host, port = split_host_port(re.sub(r"^https?://", "", ep))
        if host not in services:
            problems.append(f"tap {t.get('name')}: endpoint {ep} is not a compose service")
        elif host not in depends_of(svc) and "minio-init" not in depends_of(svc):
            problems.append(f"tap {t.get('name')}: replicatord does not wait for {host}")
        init_cmd = json.dumps(services.get("minio-init", {}).get("command", ""))
        if f"mb --ignore-existing local/{bucket}" not in init_cmd and f"mb local/{bucket}" not in init_cmd:
            problems.append(f"tap {t.get('name')}: minio-init does not create bucket {bucket}")
        if "path_style=true" not in url:
            problems.append(f"tap {t.get('name')}: no path_style=true (bucket is not a DNS name)")
    if s3_taps and (env.get("AWS_ACCESS_KEY_ID") != minio_env.get("MINIO_ROOT_USER")
                    or env.get("AWS_SECRET_ACCESS_KEY") != minio_env.get("MINIO_ROOT_PASSWORD")):
        problems.append("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not MinIO's root user/password")
    c.check("replicatord: s3 taps point at MinIO and its bucket", not problems,
            "; ".join(problems) or f"{len(s3_taps)} s3 tap(s)")

    # Admin port published and reachable; state_dir on a volume.
    published = {ct: h for _, h, ct in published_ports(svc)}
    c.check("replicatord: admin port published", admin_port in published,
            f"admin_listen {admin_listen}, published {published}")
    state_dir = daemon.get("state_dir", "/var/lib/replicatord")
    c.check("replicatord: state_dir is a volume",
            any(k == "volume" and tgt == state_dir for k, _, tgt, _ in mounts_of(svc)),
            state_dir)

    # The validation stage of --check, with exactly the compose environment
    # (plus PATH), from a scratch directory.
    if not os.access(replicatord_bin, os.X_OK):
        c.check("replicatord --check --offline", False, f"{replicatord_bin} is not executable")
    else:
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        run_env.update(env)
        with tempfile.TemporaryDirectory(prefix="compose-check-") as cwd:
            p = subprocess.run(
                [replicatord_bin, "--config", config_path, "--check", "--offline"],
                cwd=cwd, env=run_env, capture_output=True, text=True, timeout=60,
            )
        out = (p.stdout + p.stderr).strip()
        c.check(
            "replicatord --config " + os.path.relpath(config_path, source_dir) + " --check --offline",
            p.returncode == 0,
            f"exit {p.returncode}: " + " | ".join(out.splitlines()[-6:]),
        )
    return {
        "admin_port": admin_port,
        "state_dir": state_dir,
        "token": env.get(ADMIN_TOKEN_ENV, daemon.get("admin_token")),
    }


# ---------------------------------------------------------------- prometheus


def check_prometheus(c, source_dir, compose, services, admin):
    svc = services.get("prometheus")
    if svc is None:
        return
    config_file = "/etc/prometheus/prometheus.yml"
    for arg in svc.get("command") or []:
        if str(arg).startswith("--config.file="):
            config_file = str(arg).split("=", 1)[1]
    config_dir = os.path.dirname(config_file)

    # Lay the container's config directory out in a scratch directory: every
    # bind mount and compose config under it, at the same relative path.
    with tempfile.TemporaryDirectory(prefix="compose-prom-") as tmp:
        placed = []
        for kind, src, tgt, _ in mounts_of(svc):
            if kind == "bind" and tgt.startswith(config_dir + "/"):
                if not os.path.isfile(host_path(source_dir, src)):
                    continue  # reported by "every mounted file and volume exists"
                dst = os.path.join(tmp, os.path.relpath(tgt, config_dir))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(host_path(source_dir, src), dst)
                placed.append(os.path.relpath(tgt, config_dir))
        declared = compose.get("configs") or {}
        token_file = None
        for ref in svc.get("configs") or []:
            name = ref["source"] if isinstance(ref, dict) else ref
            tgt = ref.get("target", "/" + name) if isinstance(ref, dict) else "/" + name
            d = declared.get(name, {})
            if not tgt.startswith(config_dir + "/"):
                continue
            dst = os.path.join(tmp, os.path.relpath(tgt, config_dir))
            if "content" in d:
                content = interpolate(str(d["content"]))
            elif "file" in d:
                content = open(host_path(source_dir, d["file"])).read()
            else:
                continue
            with open(dst, "w") as f:
                f.write(content)
            placed.append(os.path.relpath(tgt, config_dir))
            token_file = (os.path.relpath(tgt, config_dir), content.strip())
        main = os.path.join(tmp, os.path.relpath(config_file, config_dir))
        if not c.check("prometheus: config file mounted", os.path.isfile(main),
                       f"{config_dir}/: {', '.join(sorted(placed))}"):
            return
        with open(main) as f:
            prom = yaml.safe_load(f)

        promtool = shutil.which("promtool")
        if promtool is None:
            c.check("promtool check config", False,
                    "promtool not found (Debian package prometheus: apt-get install prometheus)")
        else:
            p = subprocess.run([promtool, "check", "config", main], capture_output=True,
                               text=True, timeout=60)
            out = (p.stdout + p.stderr).replace(tmp, config_dir).strip()
            c.check("promtool check config dashboards/prometheus.yml (container layout)",
                    p.returncode == 0, f"exit {p.returncode}: " + " | ".join(out.splitlines()))

    # Scrape: a job "replicatord" (alerts.yml's ReplicatordDown needs that
    # name) at replicatord:<admin port>, with the token replicatord gets.
    jobs = {j.get("job_name"): j for j in prom.get("scrape_configs") or []}
    job = jobs.get("replicatord", {})
    targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
    want = f"replicatord:{admin['admin_port']}" if admin else None
    c.check("prometheus: job replicatord scrapes the replicatord service's admin port",
            want is not None and targets == [want], f"targets {targets}, expected [{want}]")
    auth = job.get("authorization") or {}
    if admin and admin.get("token"):
        if "credentials_file" in auth:
            ok = token_file is not None and token_file[0] == auth["credentials_file"] and \
                token_file[1] == admin["token"]
            detail = f"credentials_file {auth['credentials_file']} holds the compose token" if ok else \
                f"credentials_file {auth['credentials_file']} is not the compose token"
        else:
            ok = auth.get("credentials") == admin["token"]
            detail = "inline credentials"
        c.check("prometheus: sends replicatord's bearer token", ok, detail)
    rule_files = prom.get("rule_files") or []
    c.check("prometheus: loads alerts.yml", rule_files == ["alerts.yml"], f"rule_files {rule_files}")


# ------------------------------------------------------------------- grafana


def check_grafana(c, source_dir, services):
    svc = services.get("grafana")
    if svc is None:
        return
    prov = bind_source_for(source_dir, svc, "/etc/grafana/provisioning")
    if not c.check("grafana: provisioning mounted", prov is not None and os.path.isdir(prov),
                   os.path.relpath(prov, source_dir) if prov else "nothing at /etc/grafana/provisioning"):
        return

    def load_dir(sub):
        docs, errors = [], []
        d = os.path.join(prov, sub)
        for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if fn.endswith((".yml", ".yaml")):
                try:
                    with open(os.path.join(d, fn)) as f:
                        docs.append((fn, yaml.safe_load(f)))
                except yaml.YAMLError as e:
                    errors.append(f"{sub}/{fn}: {e}")
        return docs, errors

    ds_docs, ds_err = load_dir("datasources")
    datasources = [d for _, doc in ds_docs for d in (doc or {}).get("datasources") or []]
    problems = list(ds_err)
    for d in datasources:
        host, port = split_host_port(re.sub(r"^https?://", "", d.get("url", "")))
        if host not in services:
            problems.append(f"datasource {d.get('name')}: {host} is not a compose service")
        elif not any(ct == port for _, _, ct in published_ports(services[host])):
            problems.append(f"datasource {d.get('name')}: port {port}")
    c.check("grafana: data sources parse and point at compose services",
            datasources and not problems,
            "; ".join(problems) or ", ".join(f"{d.get('name')} ({d.get('type')}) {d.get('url')}"
                                             for d in datasources))

    db_docs, db_err = load_dir("dashboards")
    providers = [p for _, doc in db_docs for p in (doc or {}).get("providers") or []]
    problems = list(db_err)
    json_files = []
    for p in providers:
        path = (p.get("options") or {}).get("path", "")
        src = bind_source_for(source_dir, svc, path)
        if src is None:
            problems.append(f"provider {p.get('name')}: nothing is mounted at {path}")
            continue
        if os.path.realpath(src) != os.path.realpath(os.path.join(source_dir, "dashboards")):
            problems.append(f"provider {p.get('name')}: {path} is not the dashboards/ directory")
        for root, _, files in os.walk(src):
            json_files += [os.path.join(root, f) for f in sorted(files) if f.endswith(".json")]
    c.check("grafana: dashboard provider loads dashboards/", providers and not problems,
            "; ".join(problems) or ", ".join(
                f"{p.get('name')}: {p.get('options', {}).get('path')}" for p in providers))

    # Every dashboard Grafana would load: JSON with a unique uid, and data
    # source references Grafana can resolve.
    ds_uids = {d.get("uid") for d in datasources}
    ds_types = {d.get("type") for d in datasources}
    uids, problems = {}, []
    for path in json_files:
        rel = os.path.relpath(path, source_dir)
        try:
            with open(path) as f:
                dash = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            problems.append(f"{rel}: {e}")
            continue
        uid = dash.get("uid")
        if not uid:
            problems.append(f"{rel}: no uid")
        elif uid in uids:
            problems.append(f"{rel}: uid {uid} also in {uids[uid]}")
        else:
            uids[uid] = rel
        for var in (dash.get("templating") or {}).get("list") or []:
            if var.get("type") == "datasource" and var.get("query") not in ds_types:
                problems.append(f"{rel}: datasource variable of type {var.get('query')} has no "
                                "provisioned data source")
        refs = set()

        def walk(o):
            if isinstance(o, dict):
                ds = o.get("datasource")
                if isinstance(ds, dict) and ds.get("uid"):
                    refs.add(ds["uid"])
                for v in o.values():
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)

        walk(dash)
        for r in refs:
            if not (r.startswith("$") or r == "-- Grafana --" or r in ds_uids):
                problems.append(f"{rel}: data source uid {r} is not provisioned")
    c.check("grafana: every dashboard parses with a unique uid and known data sources",
            json_files and not problems,
            "; ".join(problems) or ", ".join(f"{os.path.basename(p)} ({u})"
                                             for u, p in sorted(uids.items(), key=lambda x: x[1])))


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text):
    """(instruction, arguments) with continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        instr, _, args = cur.partition(" ")
        out.append((instr.upper(), args.strip()))
        cur = ""
    return out


def apt_packages(run_args):
    pkgs = []
    for cmd in run_args.split("&&"):
        words = cmd.split()
        if "apt-get" in words and "install" in words:
            pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def cmake_targets(source_dir):
    targets = set()
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
        if "CMakeLists.txt" in files:
            with open(os.path.join(root, "CMakeLists.txt")) as f:
                targets |= set(re.findall(r"add_executable\(\s*([A-Za-z0-9_]+)", f.read()))
    return targets


def check_dockerfile(c, source_dir, replicatord_bin):
    path = os.path.join(source_dir, "Dockerfile")
    if not c.check("Dockerfile exists", os.path.isfile(path), path):
        return None
    instrs = dockerfile_instructions(open(path).read())
    stages = []  # [(from args, [instructions])]
    for instr, args in instrs:
        if instr == "FROM":
            stages.append((args, []))
        elif stages:
            stages[-1][1].append((instr, args))
    froms = [s[0] for s in stages]
    c.check("Dockerfile: debian:12 build stage, debian:12-slim runtime",
            len(stages) >= 2 and froms[0].split()[0] == "debian:12"
            and froms[-1].split()[0] == "debian:12-slim",
            "FROM " + " / FROM ".join(froms))

    build_pkgs = [p for _, ins in stages[:-1] for i, a in ins if i == "RUN" for p in apt_packages(a)]
    runtime_pkgs = [p for i, a in stages[-1][1] if i == "RUN" for p in apt_packages(a)]

    # The build stage installs every -dev package scripts/install-deps names.
    deps = open(os.path.join(source_dir, "scripts", "install-deps")).read()
    m = re.search(r"PACKAGES=\((.*?)\)", deps, re.S)
    wanted = [p for p in (m.group(1).split() if m else []) if p.endswith("-dev")]
    missing = [p for p in wanted if p not in build_pkgs]
    c.check("Dockerfile: build stage installs install-deps' -dev packages", wanted and not missing,
            f"missing {missing}" if missing else ", ".join(wanted))

    # The targets it builds are CMake executables, and it copies them out.
    built = []
    for _, ins in stages[:-1]:
        for i, a in ins:
            m = re.search(r"--target\s+([A-Za-z0-9_ ]+?)(?:\s*&&|\s+--|$)", a)
            if i == "RUN" and m:
                built += m.group(1).split()
    targets = cmake_targets(source_dir)
    copied = " ".join(a for i, a in stages[-1][1] if i == "COPY" and "--from=" in a)
    problems = [t for t in built if t not in targets]
    problems += [f"{t} not copied" for t in built if f"/{t}" not in copied]
    c.check("Dockerfile: builds CMake targets replicatord and replicatorctl",
            {"replicatord", "replicatorctl"} <= set(built) and not problems,
            "; ".join(problems) or ", ".join(built))

    runtime = dict(stages[-1][1])  # the last instruction of each kind wins
    entry = json.loads(runtime.get("ENTRYPOINT", "[]"))
    cmd = json.loads(runtime.get("CMD", "[]"))
    c.check("Dockerfile: ENTRYPOINT replicatord, CMD --config FILE",
            entry == ["replicatord"] and len(cmd) == 2 and cmd[0] == "--config",
            f"ENTRYPOINT {entry} CMD {cmd}")
    c.check("Dockerfile: runs as a non-root user",
            runtime.get("USER", "root") not in ("root", "0"), f"USER {runtime.get('USER')}")

    # Every shared library the binary needs comes from a runtime package (or
    # the slim base). Needs readelf and dpkg; the package names are Debian 12's.
    readelf, dpkg = shutil.which("readelf"), shutil.which("dpkg")
    if not (readelf and dpkg and os.path.isfile(replicatord_bin)):
        c.skip("Dockerfile: runtime packages cover the binary's libraries",
               "needs readelf, dpkg and the built replicatord")
    else:
        needed = re.findall(r"\(NEEDED\).*\[(.+?)\]",
                            subprocess.run([readelf, "-d", replicatord_bin], capture_output=True,
                                           text=True).stdout)
        ldd = subprocess.run(["ldd", replicatord_bin], capture_output=True, text=True).stdout
        resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        problems, pkg_of = [], {}
        for lib in needed:
            real = os.path.realpath(resolved.get(lib, lib))
            p = subprocess.run([dpkg, "-S", real], capture_output=True, text=True)
            if p.returncode != 0:
                p = subprocess.run([dpkg, "-S", resolved.get(lib, lib)], capture_output=True, text=True)
            pkg = p.stdout.split(":")[0] if p.returncode == 0 else None
            pkg_of[lib] = pkg
            if pkg is None:
                problems.append(f"{lib}: no package owns {real}")
            elif pkg not in runtime_pkgs and pkg not in SLIM_BASE_PACKAGES:
                problems.append(f"{lib} is in {pkg}, which the runtime stage does not install")
        c.check("Dockerfile: runtime packages cover the binary's libraries", not problems,
                "; ".join(problems) or ", ".join(f"{l} ({p})" for l, p in pkg_of.items()))

    exposed = runtime.get("EXPOSE", "").split()
    volumes = runtime.get("VOLUME", "")
    ignore_path = os.path.join(source_dir, ".dockerignore")
    ignore = []
    if os.path.isfile(ignore_path):
        with open(ignore_path) as f:
            ignore = [s for s in (line.strip() for line in f) if s and not s.startswith("#")]
    c.check(".dockerignore keeps build dirs, .testbed and .git out of the context",
            all(p in ignore for p in (".git", "build*", ".testbed")), " ".join(ignore))
    return {"config": cmd[1] if len(cmd) == 2 else None, "expose": exposed, "volume": volumes}


# ---------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", required=True, help="repository root")
    ap.add_argument("--replicatord", required=True, help="built replicatord binary")
    args = ap.parse_args()
    source_dir = os.path.abspath(args.source_dir)
    c = Checker()

    compose_path = os.path.join(source_dir, "docker-compose.yml")
    try:
        with open(compose_path) as f:
            compose = yaml.safe_load(f)
        c.check("docker-compose.yml parses", isinstance(compose, dict), compose_path)
    except (OSError, yaml.YAMLError) as e:
        c.check("docker-compose.yml parses", False, str(e))
        print(f"{c.passed} passed, {c.failed} failed")
        return 1

    for fn in REQUIRED_DASHBOARD_FILES:
        c.check(f"dashboards/{fn} exists", os.path.isfile(os.path.join(source_dir, "dashboards", fn)))

    def guarded(section, fn, *fn_args):
        # A check that trips over an unexpected shape reports it; the rest run.
        try:
            return fn(*fn_args)
        except Exception as e:  # noqa: BLE001 - reported as a failure
            c.check(f"{section}: ran to the end", False, f"{type(e).__name__}: {e}")
            return None

    services = guarded("compose", check_compose, c, source_dir, compose) or {}
    guarded("kafka", check_kafka, c, source_dir, services)
    docker = guarded("Dockerfile", check_dockerfile, c, source_dir, args.replicatord)
    admin = guarded("replicatord", check_replicatord, c, source_dir, services, args.replicatord,
                    docker["config"] if docker else None)
    if docker and admin:
        c.check("Dockerfile: EXPOSE is the admin port, VOLUME the state_dir",
                admin["admin_port"] in docker["expose"] and admin["state_dir"] in docker["volume"],
                f"EXPOSE {docker['expose']}, VOLUME {docker['volume']}; config: admin port "
                f"{admin['admin_port']}, state_dir {admin['state_dir']}")
    guarded("prometheus", check_prometheus, c, source_dir, compose, services, admin)
    guarded("grafana", check_grafana, c, source_dir, services)

    # The real parser, when this machine has it (CI does not).
    docker_bin = shutil.which("docker")
    has_compose = docker_bin is not None and subprocess.run(
        [docker_bin, "compose", "version"], capture_output=True).returncode == 0
    if has_compose:
        p = subprocess.run([docker_bin, "compose", "-f", compose_path, "config", "-q"],
                           capture_output=True, text=True, cwd=source_dir, timeout=60)
        c.check("docker compose config -q", p.returncode == 0, (p.stdout + p.stderr).strip())
    else:
        c.skip("docker compose config -q", "docker compose is not available here")

    if c.skipped:
        print(f"({c.skipped} skipped: the tools they need are not on this machine)")
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
