"""What the deployment files must say, beyond what a schema or a linter checks.

Run by scripts/check-deploy (with the PyYAML that yamllint brings); not meant to be run by hand,
though `python3 deploy/checks/manifests.py --help` works. It checks, for every file under
deploy/kubernetes/, deploy/systemd/ and the Dockerfile:

- every redauth flag used (in args, ExecStart, REDAUTH_* variables) exists: against the flags of a
  built redauth binary when one is given (--flags-from), else against the list below;
- each redauth container: native sidecar (init container with restartPolicy Always) or plain
  container, a known --auth mode with its cloud's placeholder upstream, loopback client
  listener, admin listener the probes can reach, probes on /startupz /livez /readyz, resources,
  the restricted security context with uid 65532;
- the pod's identity, by the container's --auth mode:
    entra    --entra-credential workload-identity, the pod label azure.workload.identity/use and
             the ServiceAccount's azure.workload.identity/client-id annotation (AKS);
    gcp-iam  the ServiceAccount's iam.gke.io/gcp-service-account annotation names a Google
             service account if it is there (without it, a direct principal grant: nothing to
             check), and --ca-file is a certificate in a ConfigMap of the same file, mounted
             read-only into the container (GKE, Memorystore);
    aws-iam  --aws-cache-name, --aws-region and --username given, and the ServiceAccount's
             eks.amazonaws.com/role-arn annotation is a role ARN (EKS IRSA, ElastiCache);
- a grace period longer than redauth's shutdown delays, and a plain Job's POST to /quitquitquit;
- the systemd unit's identity, exit status and stop timeout settings, and its hardening;
- the Dockerfile's stages, user and entrypoint, and that .dockerignore lets in what it copies.

With --extract-scripts DIR it also writes the shell scripts embedded in `sh -c` containers to DIR
so that shellcheck can read them. Prints one line per problem; exits 1 if there was any.
"""

import argparse
import fnmatch
import pathlib
import re
import sys

import yaml

REDAUTH_IMAGE = "ghcr.io/example/redauth:"
# The placeholder upstream of each --auth mode's files (deploy/README.md lists them).
UPSTREAMS = {
    "entra": "rediss://myredis.westeurope.redis.azure.net:10000",
    "gcp-iam": "rediss://10.0.0.3:6379",
    "aws-iam": "rediss://master.my-cache.xxxxxx.use1.cache.amazonaws.com:6379",
}
UID = 65532

# Flags as the README and the admin work name them; used when no binary is given.
KNOWN_FLAGS = {
    "config", "listen", "unix-socket", "unix-socket-mode", "upstream",
    "allow-plaintext-upstream", "ca-file", "tls-server-name", "client-cert", "client-key",
    "allow-remote-clients", "client-password-file", "max-bulk-len",
    "auth", "username", "password-file", "entra-credential", "entra-client-id",
    "entra-tenant-id", "entra-scope", "entra-client-secret-file", "aws-cache-name",
    "aws-service", "aws-serverless", "aws-region", "aws-connection-limit", "gcp-scope", "reauth",
    "cluster", "cluster-ports", "cluster-announce-host", "cluster-tls-server-name",
    "cluster-refresh-interval", "connect-timeout", "pool-size", "threads", "output-timeout",
    "idle-timeout", "max-connections", "admin-listen", "min-shutdown-delay",
    "max-shutdown-delay", "exit-zero-on-sigterm", "run-connection-test", "log-format",
    "log-level",
}
# Variables that are no flag's: the password itself and the config file's own variable.
EXTRA_VARIABLES = {"REDAUTH_PASSWORD"}

UNIT_HARDENING = {
    "DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "MemoryDenyWriteExecute": "yes", "KillSignal": "SIGTERM", "Restart": "on-failure",
}

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def seconds(text):
    """A duration such as 10s, 500ms, 1m30s or 0, in seconds; None if it is not one."""
    text = str(text).strip()
    if text == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def parse_flags(words, where):
    """Flag name -> value (True for a bare switch) from ['--a=b', '--c', 'd', '--e', ...]."""
    flags, i = {}, 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            problem(where, f"unexpected argument {word!r}")
            i += 1
            continue
        name, eq, value = word[2:].partition("=")
        if not eq:
            following = words[i + 1] if i + 1 < len(words) else None
            if following is not None and not following.startswith("--"):
                value, i = following, i + 1
            else:
                value = True
        flags[name] = value
        i += 1
    return flags


def check_known(flags, known, where):
    for name in flags:
        if name not in known:
            problem(where, f"--{name} is not a redauth flag")


def container_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_security(container, where):
    sc = container.get("securityContext") or {}
    expected = {
        "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
    }
    for key, value in expected.items():
        if sc.get(key) != value:
            problem(where, f"securityContext.{key} should be {value!r}, is {sc.get(key)!r}")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
        problem(where, "securityContext.capabilities.drop should be [ALL]")
    if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem(where, "securityContext.seccompProfile.type should be RuntimeDefault")


def check_probes(container, admin_port, kind, where):
    wanted = {"startupProbe": "/startupz", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    required = {"startupProbe", "livenessProbe"} if kind == "Job" else set(wanted)
    for probe, path in wanted.items():
        spec = container.get(probe)
        if spec is None:
            if probe in required:
                problem(where, f"no {probe}")
            continue
        get = spec.get("httpGet") or {}
        if get.get("path") != path:
            problem(where, f"{probe} should GET {path}, gets {get.get('path')!r}")
        if container_port(container, get.get("port")) != admin_port:
            problem(where, f"{probe} does not probe the admin port {admin_port}")


def check_redauth(container, native, kind, grace, where):
    flags = parse_flags(container.get("args", []), where)
    check_known(flags, KNOWN, where)
    mode = flags.get("auth")
    if mode not in UPSTREAMS:
        problem(where, f"--auth should be one of {', '.join(UPSTREAMS)}, is {mode!r}")
    expected = {"upstream": UPSTREAMS.get(mode), "listen": "127.0.0.1:6379"}
    for name, value in expected.items():
        if value is not None and flags.get(name) != value:
            problem(where, f"--{name} should be {value}, is {flags.get(name)!r}")
    admin = str(flags.get("admin-listen", "127.0.0.1:9180"))
    host, _, port = admin.rpartition(":")
    if host in ("127.0.0.1", "[::1]", "localhost"):
        problem(where, f"--admin-listen {admin} is loopback: the kubelet cannot probe it")
    check_probes(container, int(port), kind, where)
    if not container.get("image", "").startswith(REDAUTH_IMAGE):
        problem(where, f"image should be {REDAUTH_IMAGE}…")
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        if not {"cpu", "memory"} <= set((resources.get(part) or {})):
            problem(where, f"resources.{part} should set cpu and memory")
    check_security(container, where)
    if native != (container.get("restartPolicy") == "Always"):
        problem(where, "an init container needs restartPolicy: Always to be a sidecar")
    delays = [seconds(flags.get(f, d)) for f, d in
              (("min-shutdown-delay", "0"), ("max-shutdown-delay", "10s"))]
    if None in delays:
        problem(where, "a shutdown delay is not a duration")
    elif grace is None or grace <= sum(delays):
        problem(where, f"terminationGracePeriodSeconds {grace} is not above the shutdown "
                       f"delays ({sum(delays):g} s)")
    if not native and kind == "Deployment" and not flags.get("min-shutdown-delay"):
        problem(where, "a plain sidecar gets SIGTERM with the app: give --min-shutdown-delay")
    return flags


class Pod:
    """What the identity rules look at: the pod template, its ServiceAccount's annotations and
    the ConfigMaps of the file."""

    def __init__(self, template, account, configmaps):
        self.labels = template.get("metadata", {}).get("labels", {})
        self.spec = template["spec"]
        self.account_annotations = (account or {}).get("metadata", {}).get("annotations") or {}
        self.configmaps = configmaps


def check_entra(flags, container, pod, where):
    if flags.get("entra-credential") != "workload-identity":
        problem(where, f"--entra-credential should be workload-identity, "
                       f"is {flags.get('entra-credential')!r}")
    if pod.labels.get("azure.workload.identity/use") != "true":
        problem(where, 'pod label azure.workload.identity/use: "true" missing')
    if not pod.account_annotations.get("azure.workload.identity/client-id"):
        problem(where, "ServiceAccount without azure.workload.identity/client-id")


def check_gcp(flags, container, pod, where):
    account = pod.account_annotations.get("iam.gke.io/gcp-service-account")
    if account is not None and not re.fullmatch(
            r"[a-z][a-z0-9-]*@[a-z][a-z0-9-]*\.iam\.gserviceaccount\.com", str(account)):
        problem(where, f"iam.gke.io/gcp-service-account {account!r} is not a service account email")
    check_ca_file(flags, container, pod, where)


def check_ca_file(flags, container, pod, where):
    """--ca-file names a key of a ConfigMap in this file, mounted read-only into the container."""
    path = flags.get("ca-file")
    if not isinstance(path, str):
        problem(where, "--ca-file missing: the instance's CA is in no system root store")
        return
    mounts = [m for m in container.get("volumeMounts", [])
              if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
    if not mounts:
        problem(where, f"--ca-file {path} is not under a volume mount of the container")
        return
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    if mount.get("readOnly") is not True:
        problem(where, f"the volume mount at {mount['mountPath']} should be readOnly")
    volume = next((v for v in pod.spec.get("volumes", []) if v["name"] == mount["name"]), {})
    source = volume.get("configMap")
    if source is None:
        problem(where, f"--ca-file {path} is not on a ConfigMap volume")
        return
    if mount.get("subPath"):
        relative = mount["subPath"] if path == mount["mountPath"] else None
    else:
        relative = path[len(mount["mountPath"].rstrip("/")) + 1:]
    items = source.get("items")
    key = relative if items is None else next(
        (i["key"] for i in items if i.get("path") == relative), None)
    configmap = pod.configmaps.get(source.get("name"))
    if configmap is None:
        problem(where, f"ConfigMap {source.get('name')!r} is not in this file")
        return
    pem = (configmap.get("data") or {}).get(key)
    if pem is None:
        problem(where, f"ConfigMap {source.get('name')} has no key for --ca-file {path}")
    elif "-----BEGIN CERTIFICATE-----" not in pem:
        problem(where, f"ConfigMap {source.get('name')} key {key} is not a PEM certificate")


def check_aws(flags, container, pod, where):
    for name in ("aws-cache-name", "aws-region", "username"):
        if not isinstance(flags.get(name), str) or not flags[name]:
            problem(where, f"--{name} missing (aws-iam signs its tokens for it)")
    arn = pod.account_annotations.get("eks.amazonaws.com/role-arn")
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", str(arn or "")):
        problem(where, f"ServiceAccount's eks.amazonaws.com/role-arn should be a role ARN, "
                       f"is {arn!r}")


# The identity rules of each --auth mode, for the pod a redauth container is in.
IDENTITY_RULES = {"entra": check_entra, "gcp-iam": check_gcp, "aws-iam": check_aws}


def shell_script(container):
    command = container.get("command") or []
    if command[:2] in (["/bin/sh", "-c"], ["sh", "-c"]) and container.get("args"):
        return container["args"][0]
    return None


def check_workload(doc, accounts, configmaps, path, scripts):
    kind, name = doc["kind"], doc["metadata"]["name"]
    where = f"{path.name}: {kind}/{name}"
    template = doc["spec"]["template"]
    spec = template["spec"]
    account = spec.get("serviceAccountName")
    if account not in accounts:
        problem(where, f"serviceAccountName {account!r} is not a ServiceAccount in this file")
    pod = Pod(template, accounts.get(account), configmaps)
    grace = spec.get("terminationGracePeriodSeconds")
    found = []
    for native, key in ((True, "initContainers"), (False, "containers")):
        for c in spec.get(key, []):
            if c.get("image", "").startswith(REDAUTH_IMAGE) or c.get("name") == "redauth":
                found.append(c["name"])
                flags = check_redauth(c, native, kind, grace, f"{where}: {c['name']}")
                rules = IDENTITY_RULES.get(flags.get("auth"))
                if rules:
                    rules(flags, c, pod, f"{where}: {c['name']}")
                native_sidecar = native
    if len(found) != 1:
        problem(where, f"expected one redauth container, found {found}")
        return
    others = [c for c in spec.get("containers", []) if c["name"] not in found]
    for c in others:
        script = shell_script(c)
        if script is not None:
            scripts.append((f"{path.stem}-{name}-{c['name']}.sh", script))
        for env in c.get("env", []):
            if "REDIS" in env["name"] and env.get("value") != "redis://127.0.0.1:6379":
                problem(where, f"{env['name']} should be redis://127.0.0.1:6379")
    if kind == "Job" and not native_sidecar:
        if not any("/quitquitquit" in (shell_script(c) or "") and "post" in
                   (shell_script(c) or "").lower() for c in others):
            problem(where, "a plain Job's task must POST /quitquitquit when done")
    if kind == "Job" and spec.get("restartPolicy") not in ("Never", "OnFailure"):
        problem(where, "a Job's pods need restartPolicy Never or OnFailure")


def check_kubernetes(directory, scripts):
    for path in sorted(directory.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
        configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
        if not workloads:
            problem(path.name, "no Deployment or Job")
        for doc in workloads:
            check_workload(doc, accounts, configmaps, path, scripts)


def unit_settings(text):
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def check_systemd(directory):
    unit = directory / "redauth.service"
    settings = unit_settings(unit.read_text())
    where = unit.name
    exec_start = settings.get("ExecStart", [""])[0].split()
    if not exec_start or not exec_start[0].endswith("/redauth"):
        problem(where, "ExecStart should run redauth")
    flags = parse_flags(exec_start[1:], where)
    check_known(flags, KNOWN, where)
    if flags.get("auth") != "entra" or flags.get("entra-credential") != "managed-identity":
        problem(where, "ExecStart should give --auth entra --entra-credential managed-identity")
    for key, value in UNIT_HARDENING.items():
        if value not in settings.get(key, []):
            problem(where, f"{key}={value} missing")
    if "@system-service" not in settings.get("SystemCallFilter", []):
        problem(where, "SystemCallFilter=@system-service missing")
    if "143" not in " ".join(settings.get("SuccessExitStatus", [])).split():
        problem(where, "SuccessExitStatus should include 143 (redauth's status after SIGTERM)")
    if not any(v.lstrip("-") == "/etc/redauth/redauth.env"
               for v in settings.get("EnvironmentFile", [])):
        problem(where, "EnvironmentFile=-/etc/redauth/redauth.env missing")

    example = directory / "redauth.env.example"
    variables = {}
    for line in example.read_text().splitlines():
        m = re.match(r"^#?(REDAUTH_[A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            variables[m.group(1)] = (m.group(2), not line.startswith("#"))
    for var in variables:
        if var not in EXTRA_VARIABLES and var[8:].lower().replace("_", "-") not in KNOWN:
            problem(example.name, f"{var} is no flag's variable")
    if not variables.get("REDAUTH_UPSTREAM", ("", False))[1]:
        problem(example.name, "REDAUTH_UPSTREAM should be set (it is required)")
    delays = [seconds(variables.get(v, (d, False))[0]) for v, d in
              (("REDAUTH_MIN_SHUTDOWN_DELAY", "0"), ("REDAUTH_MAX_SHUTDOWN_DELAY", "10s"))]
    stop = seconds(settings.get("TimeoutStopSec", ["90s"])[0])
    if None in delays or stop is None or stop <= sum(delays):
        problem(where, f"TimeoutStopSec should be above the shutdown delays ({delays})")


def ignored(path, patterns):
    """Whether .dockerignore leaves `path` out of the build context (last match wins)."""
    parts = path.split("/")
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        prefixes = ("/".join(parts[:n]) for n in range(1, len(parts) + 1))
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            result = not negate
    return result


def check_docker(root):
    text = (root / "Dockerfile").read_text()
    where = "Dockerfile"
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    if [s[0] for s in stages] != ["rust:1-slim-bookworm", "gcr.io/distroless/cc-debian12:nonroot"]:
        problem(where, f"stages should be rust:1-slim-bookworm then distroless cc: {stages}")
    if "cargo build --release --locked" not in text:
        problem(where, "the builder should run cargo build --release --locked")
    final = text[text.rfind("\nFROM "):]
    if not re.search(rf"^USER\s+{UID}(:{UID})?\s*$", final, re.M):
        problem(where, f"the runtime stage should run as USER {UID}")
    if 'ENTRYPOINT ["/usr/local/bin/redauth"]' not in final:
        problem(where, 'ENTRYPOINT ["/usr/local/bin/redauth"] missing')
    if not re.search(r"^EXPOSE\s+6379\s+9180\s*$", final, re.M):
        problem(where, "EXPOSE 6379 9180 missing")
    if re.search(r"0\.0\.0\.0", "\n".join(l for l in final.splitlines()
                                           if not l.lstrip().startswith("#"))):
        problem(where, "the image must not default to listening on all addresses")

    patterns = [l.strip() for l in (root / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    sources = []
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M):
        sources += line.split()[:-1]
    for source in sources:
        if ignored(source.rstrip("/"), patterns):
            problem(".dockerignore", f"leaves out {source}, which the Dockerfile copies")
    for path in ("target/release/redauth", ".git/HEAD", ".demo/ca.key", ".cache/x", "tests/x.rs"):
        if not ignored(path, patterns):
            problem(".dockerignore", f"lets {path} into the build context")


def main():
    global KNOWN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path("."))
    parser.add_argument("--flags-from", type=pathlib.Path,
                        help="a file with `redauth --help` output to take the flags from")
    parser.add_argument("--extract-scripts", type=pathlib.Path, metavar="DIR")
    args = parser.parse_args()

    KNOWN = set(KNOWN_FLAGS)
    if args.flags_from:
        KNOWN = set(re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", args.flags_from.read_text(),
                               re.M)) - {"help", "version"}
    scripts = []
    check_kubernetes(args.root / "deploy/kubernetes", scripts)
    check_systemd(args.root / "deploy/systemd")
    check_docker(args.root)
    if args.extract_scripts:
        args.extract_scripts.mkdir(parents=True, exist_ok=True)
        for name, script in scripts:
            (args.extract_scripts / name).write_text("#!/bin/sh\n" + script)
    for line in problems:
        print(line)
    return 1 if problems else 0


KNOWN = set(KNOWN_FLAGS)

if __name__ == "__main__":
    sys.exit(main())
