"""The repository's Docker image built and run with podman, on machines with no Docker engine.

Base images cannot be pulled here, so :func:`ensure_base` stands in for the Dockerfile's
pinned base: a Debian ``minbase`` of the tag's suite with python3 and pip, shaped like the
official image (``python`` and ``pip`` in ``/usr/local/bin``, no EXTERNALLY-MANAGED marker),
imported and tagged with the pinned name. :func:`build_command` adds what this kind of machine
needs to a ``build``: the Docker format (the OCI format drops HEALTHCHECK), the host network,
ulimits under the hard limits, and the host's CA bundle and pip settings, so that pip inside
the build reaches the package index as the host's pip does. A :class:`Container` is one
``podman run -d``, always removed, even by a crashed harness at interpreter exit.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import fcntl
import json
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from testbed.process import ROOT, ProcessExited

# crun fails on this kind of machine's cgroup setup; runc works.
ENGINE = ("podman", "--runtime", "runc")
DOCKERFILE = ROOT / "Dockerfile"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # where Debian and the python images keep it
# What the stand-in base needs beyond minbase: the interpreter and pip, useradd/groupadd
# (the Dockerfile's user), and the CA certificates the official image also ships.
STANDIN_PACKAGES = ("python3", "python3-pip", "passwd", "ca-certificates")
STANDIN_HOOKS = (
    'for n in python python3; do ln -sf /usr/bin/python3 "$1/usr/local/bin/$n"; done',
    'for n in pip pip3; do ln -sf /usr/bin/pip3 "$1/usr/local/bin/$n"; done',
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
)
# As Debian's slim images do: no documentation, manual pages or translations.
STANDIN_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
)
# The pip settings that say where packages come from and how they are reached.
PIP_KEYS = (
    "index-url",
    "extra-index-url",
    "find-links",
    "no-index",
    "trusted-host",
    "proxy",
    "timeout",
    "default-timeout",
    "retries",
)
LOCATION_KEYS = ("index-url", "extra-index-url", "find-links")


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """``podman --runtime runc ARGS``, its output captured as text."""
    result = subprocess.run(
        [*ENGINE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {result.returncode}: {result.stderr}")
    return result


def ulimit_flags() -> list[str]:
    """``--ulimit`` for open files and processes at 1024 or the hard limit if lower: podman's
    defaults exceed the hard limits of this kind of machine and the container fails to start."""
    flags = []
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(limit)[1]
        value = 1024 if hard == resource.RLIM_INFINITY else min(1024, hard)
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


def engine_unavailable(base: str | None = None) -> str | None:
    """Why no image can be built and run here, or None. ``base``: the pinned base image,
    whose stand-in needs mmdebstrap unless it is already there."""
    if os.geteuid() != 0:
        return "podman runs the image as root only here (rootless needs subuid maps)"
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-system-deps.sh installs it as root)"
    info = podman("info", check=False)
    if info.returncode != 0:
        return f"`podman --runtime runc info` fails: {info.stderr.strip()[-300:]}"
    if base and not image_exists(base) and shutil.which("mmdebstrap") is None:
        return "mmdebstrap is not installed, and the stand-in base image needs it"
    return None


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def image_id(name: str) -> str | None:
    """The ID of the image ``name`` names, None if there is none."""
    result = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


# -- the Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), " ".join(args.split())))
    return pairs


def instructions(name: str, path: Path = DOCKERFILE) -> list[str]:
    """The arguments of every ``name`` instruction of the Dockerfile."""
    return [args for instruction, args in dockerfile_instructions(path) if instruction == name]


def healthcheck_command(path: Path = DOCKERFILE) -> list[str]:
    """The command of the Dockerfile's one HEALTHCHECK (exec form)."""
    (check,) = instructions("HEALTHCHECK", path)
    return json.loads(check.split(" CMD ", 1)[1])


def base_image(path: Path = DOCKERFILE) -> str:
    """The Dockerfile's one FROM image, named as Docker resolves it (``docker.io/library/``)."""
    (base,) = instructions("FROM", path)
    name = base.split()[0]
    if "/" not in name.split(":")[0]:
        return f"docker.io/library/{name}"
    return name if "." in name.split("/")[0] else f"docker.io/{name}"


# -- the stand-in base --------------------------------------------------------------------------


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` (a file in the temporary directory) in the block:
    test sessions sharing the machine's podman storage take turns."""
    with open(Path(tempfile.gettempdir()) / f"ocs-exporter-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_base(name: str, workdir: Path) -> float | None:
    """Build, import and tag the stand-in for ``name`` unless an image of that name exists;
    the seconds it took, None when it was there."""
    with machine_lock("standin"):
        if image_exists(name):
            return None
        started = time.monotonic()
        build_standin(name, workdir)
        return time.monotonic() - started


def build_standin(name: str, workdir: Path) -> None:
    """mmdebstrap the suite named at the end of ``name``'s tag (``3.11.14-slim-bookworm``)
    and import it as ``name``, with the official image's PATH, LANG and CMD."""
    suite = name.rsplit(":", 1)[1].rsplit("-", 1)[-1]
    tarball = Path(workdir) / "standin.tar"
    log = Path(workdir) / "mmdebstrap.log"
    command = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(STANDIN_PACKAGES)}",
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in STANDIN_EXCLUDES),
        *(f"--customize-hook={hook}" for hook in STANDIN_HOOKS),
        suite,
        str(tarball),
    ]
    with open(log, "w") as out:
        result = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed ({result.returncode}):\n{log.read_text()[-3000:]}")
    try:
        podman(
            "import",
            *("--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"),
            *("--change", "ENV LANG=C.UTF-8"),
            *("--change", 'CMD ["python3"]'),
            *("--message", f"stand-in for {name}: Debian {suite} minbase with {STANDIN_PACKAGES}"),
            str(tarball),
            name,
            timeout=600,
        )
    finally:
        tarball.unlink(missing_ok=True)


# -- the build ----------------------------------------------------------------------------------


def host_pip_settings(python: str = sys.executable) -> dict[str, str]:
    """The host pip's settings of :data:`PIP_KEYS` and ``cert``, from its config files and
    PIP_* variables (the variables win, as in pip)."""
    listing = subprocess.run(
        [python, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    ).stdout
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in listing.splitlines():
        match = re.fullmatch(r"(:env:|global|install)\.([\w-]+)=(.*)", line.strip())
        if match and match[2] in (*PIP_KEYS, "cert"):
            (env if match[1] == ":env:" else files)[match[2]] = ast.literal_eval(match[3])
    return {**files, **env}


def local_path(key: str, location: str) -> str | None:
    """The host directory to mount for a pip location (``file:///x`` or ``/x``), None for a
    URL. A local index's ``simple/`` pages link to files beside it: its parent is mounted."""
    path = location.removeprefix("file://")
    if not path.startswith("/"):
        return None
    is_index = key != "find-links" and Path(path).name == "simple"
    return str(Path(path).parent) if is_index else path


def pip_build_mounts(workdir: Path, settings: dict[str, str] | None = None) -> list[str]:
    """``-v`` flags for a build: the CA bundle the host's pip trusts, over the image's own; a
    pip config (``/etc/pip.conf``) trusting it and carrying the host's index settings; the
    host's local package directories those settings name, read-only at the same paths. The
    build leaves the mount points behind, empty (an empty /etc/pip.conf, empty directories)."""
    settings = dict(host_pip_settings() if settings is None else settings)
    ca = settings.pop("cert", None) or ssl.get_default_verify_paths().cafile or CA_BUNDLE
    mounts = ["-v", f"{ca}:{CA_BUNDLE}:ro"]
    lines = ["[global]", f"cert = {CA_BUNDLE}"]
    for key, value in settings.items():
        lines.append(f"{key} = {value}")
        if key in LOCATION_KEYS:
            for path in filter(None, (local_path(key, v) for v in value.split())):
                if Path(path).exists():
                    mounts += ["-v", f"{path}:{path}:ro"]
    config = Path(workdir) / "pip.conf"
    config.write_text("\n".join(lines) + "\n")
    return [*mounts, "-v", f"{config}:/etc/pip.conf:ro"]


def build_command(args: Sequence[str], workdir: Path, iidfile: Path) -> list[str]:
    """``podman build`` with this machine's flags before ``args`` (a ``docker build``'s):
    the Docker format, the host network, no pull (the base is local), the ulimits, pip's
    mounts, and the built image's ID written to ``iidfile``. Proxy variables pass through
    (podman's ``--http-proxy`` default)."""
    return [
        *ENGINE,
        "build",
        *("--format", "docker", "--network", "host", "--pull=never"),
        *ulimit_flags(),
        *pip_build_mounts(workdir),
        *("--iidfile", str(iidfile)),
        *args,
    ]


def build(args: Sequence[str], workdir: Path, context: Path = ROOT) -> str:
    """Run :func:`build_command` in ``context``; the image's ID. Output in ``workdir/build.log``."""
    iidfile = Path(workdir) / "image.id"
    log = Path(workdir) / "build.log"
    with open(log, "w") as out:
        result = subprocess.run(
            build_command(args, workdir, iidfile),
            cwd=context,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=1200,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"podman build failed ({result.returncode}):\n{log.read_text()[-3000:]}")
    return iidfile.read_text().strip().removeprefix("sha256:")  # as inspect's {{.Id}}


# -- a container --------------------------------------------------------------------------------


_running: set[Container] = set()


class Container:
    """One ``podman run -d`` named ``name``: inspected, exec'd into, stopped, always removed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, args: Sequence[str]) -> Container:
        """``podman run`` with the ulimits before ``args`` (a ``docker run``'s, which must
        detach and name the container ``name``)."""
        _running.add(self)
        podman("run", *ulimit_flags(), *args)
        return self

    def inspect(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def exit_code(self) -> int:
        return int(self.inspect("{{.State.ExitCode}}"))

    def check_alive(self) -> None:
        if not self.running():
            raise ProcessExited(
                f"container {self.name} exited with {self.exit_code()}:\n{self.logs()[-2000:]}"
            )

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> str:
        return podman("exec", self.name, *command).stdout

    def healthcheck(self) -> subprocess.CompletedProcess:
        """``podman healthcheck run``: the image's HEALTHCHECK command, run once now."""
        return podman("healthcheck", "run", self.name, check=False)

    def stop(self, timeout: int = 10) -> float:
        """``podman stop``: the stop signal to PID 1, SIGKILL after ``timeout`` s; the seconds
        it took."""
        started = time.monotonic()
        podman("stop", "--time", str(timeout), self.name, timeout=timeout + 30)
        return time.monotonic() - started

    def remove(self) -> None:
        _running.discard(self)
        podman("rm", "--force", "--time", "0", self.name, check=False)


@atexit.register
def _remove_leftovers() -> None:
    """Containers a crashed harness or an interrupted session left running."""
    for container in list(_running):
        with contextlib.suppress(Exception):
            container.remove()
