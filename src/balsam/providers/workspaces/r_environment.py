"""The R part of a template environment (templates with the ``ir`` kernel).

R itself and the R packages a template names come from the machine's Debian packages
(``system_packages``); what is the environment's own lives in ``<env>/R/library``:
Balsam's R package ``balsam`` (the project's bucket from R, on reticulate with the
environment's boto3 and pyarrow) and, where the installation names a CRAN mirror, the
template's ``cranPackages``. The lock records R's version, every R package the kernel
sees (``R/<name>``) and the Debian packages' versions (``deb/<name>``), so results can
be traced to them; a Debian upgrade is noticed at the next start and the lock written
again.

A workspace's processes find the library by ``R_LIBS`` (before the machine's site
library), install packages of their own into their home (``R_LIBS_USER``), and
reticulate uses the environment's Python (``RETICULATE_PYTHON``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from balsam.providers.workspaces.base import EnvironmentSpec, WorkspaceStartError, r_package

#: The environment's own R library, relative to the environment.
LIBRARY = Path("R") / "library"
#: IRkernel's kernel name, the one SCB's R notebooks name.
KERNEL = "ir"

#: The site profile of the environment's R (in place of the machine's, which names
#: CRAN's cloud): packages come only from the mirror the installation names.
PROFILE = Path("R") / "Rprofile.site"
#: install.packages() installs into the first library on the path: the user's own
#: (R_LIBS_USER, made here if missing), as the environment's is read-only.
_PROFILE = """local({
  url <- Sys.getenv("BALSAM_CRAN_URL")
  options(repos = if (nzchar(url)) c(CRAN = url) else character())
  user <- Sys.getenv("R_LIBS_USER")
  made <- nzchar(user) && (dir.exists(user) ||
    dir.create(user, recursive = TRUE, showWarnings = FALSE))
  if (made) .libPaths(c(user, .libPaths()))
})
"""

Run = Callable[[list[str]], str]

#: What R kernels run with (their kernel spec's ``env``), measured on a round trip of a
#: million rows through balsam::write_parquet/read_parquet (bench/bench_r_parquet.py):
#: with reticulate loaded (and with it the Matrix package) a full garbage collection
#: costs ~0.12 s, and R's default heap growth ran two or three of them per call; R's
#: large vectors come from mmap, so each fresh one is page-faulted in again. Heap
#: growth in bigger steps and glibc keeping up to 256 MiB of freed memory for reuse
#: (counted against the workspace's memory, as any of its allocations) took the round
#: trip from ~0.9 s to ~0.45 s.
KERNEL_ENV = {
    "R_GC_MEM_GROW": "3",
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024),
}


def debian_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """name → installed version of each Debian package; WorkspaceStartError naming
    every one that is not installed. Empty where the machine has no dpkg (the build
    then fails on what is missing)."""
    if not packages or shutil.which("dpkg-query") is None:
        return {}
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *packages],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = {}
    for line in done.stdout.splitlines():
        name, _, rest = line.partition("\t")
        version, _, status = rest.partition("\t")
        if status.startswith("ii"):
            found[name.split(":", 1)[0]] = version
    missing = [p for p in packages if p not in found]
    if missing:
        raise WorkspaceStartError(
            "The template needs system packages that are not installed on this machine: "
            f"{', '.join(missing)}. An administrator installs them "
            f"(apt-get install {' '.join(missing)})."
        )
    return found


def install(target: Path, spec: EnvironmentSpec, run: Run, cran_url: str | None) -> None:
    """Balsam's R package (and the template's CRAN packages) into ``target``'s library."""
    library = target / LIBRARY
    library.mkdir(parents=True, exist_ok=True)
    (target / PROFILE).write_text(_PROFILE)
    with tempfile.TemporaryDirectory() as scratch:
        # A copy: R CMD INSTALL may write into the folder it installs from.
        source = Path(scratch) / "balsam"
        shutil.copytree(r_package(), source, ignore=shutil.ignore_patterns("__pycache__"))
        run(
            [
                _tool("R"),
                "CMD",
                "INSTALL",
                "--no-docs",
                "--no-html",
                "--no-multiarch",
                f"--library={library}",
                str(source),
            ]
        )
    if spec.cran_packages:
        if not cran_url:
            raise WorkspaceStartError(
                "The template names CRAN packages, but this installation names no CRAN "
                "mirror (BALSAM_WORKSPACES__CRAN_URL)."
            )
        packages = ", ".join(json.dumps(p) for p in spec.cran_packages)
        run(
            [
                _tool("Rscript"),
                "-e",
                f"install.packages(c({packages}), lib = {json.dumps(str(library))}, "
                f"repos = {json.dumps(cran_url)}, Ncpus = 2); "
                f"missing <- setdiff(c({packages}), rownames(installed.packages("
                f"lib.loc = {json.dumps(str(library))}))); "
                "if (length(missing)) stop('not installed: ', paste(missing, collapse = ', '))",
            ]
        )


_LOCK_SCRIPT = """
args <- commandArgs(trailingOnly = TRUE)
.libPaths(c(args[[1]], .libPaths()))
ip <- installed.packages()
ip <- ip[!duplicated(ip[, "Package"]), , drop = FALSE]
cat(paste0("R\\t", paste(R.version$major, R.version$minor, sep = ".")), sep = "\\n")
cat(paste0("R/", ip[, "Package"], "\\t", ip[, "Version"]), sep = "\\n")
"""


def lock(target: Path, spec: EnvironmentSpec, run: Run) -> dict[str, str]:
    """R's version, every R package the kernel sees (the environment's library first,
    as for the kernel), and the Debian packages' versions."""
    out = run([_tool("Rscript"), "-e", _LOCK_SCRIPT, str(target / LIBRARY)])
    found = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    found.update({f"deb/{k}": v for k, v in debian_versions(spec.system_packages).items()})
    return found


def debian_changed(spec: EnvironmentSpec, recorded: dict[str, str]) -> bool:
    """Whether the machine's Debian packages differ from the lock (an upgrade since the
    build); WorkspaceStartError when one is missing."""
    now = debian_versions(spec.system_packages)
    return any(recorded.get(f"deb/{name}") != version for name, version in now.items())


def server_environment(env_path: Path, home: Path, cran_url: str | None) -> dict[str, str]:
    """What an R environment adds to a workspace server's environment."""
    if not (env_path / LIBRARY).is_dir():
        return {}
    return {
        "R_LIBS": str(env_path / LIBRARY),
        "R_LIBS_USER": str(home / "R" / "library"),
        "R_PROFILE": str(env_path / PROFILE),
        "RETICULATE_PYTHON": str(env_path / "bin" / "python"),
        **({"BALSAM_CRAN_URL": cran_url} if cran_url else {}),
    }


def write_kernel_spec(env_path: Path, folder: Path) -> None:
    """IRkernel's spec under ``folder/kernels/ir`` when the environment has R. Its
    channels follow the server's transport (IPC: IRkernel binds what the connection
    file names)."""
    if not (env_path / LIBRARY).is_dir():
        return
    spec_dir = folder / "kernels" / KERNEL
    spec_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    for made in (folder, folder / "kernels", spec_dir):
        made.chmod(0o755)
    spec = {
        "argv": [
            _tool("R"),
            "--no-echo",
            "--no-restore",
            "-e",
            "IRkernel::main()",
            "--args",
            "{connection_file}",
        ],
        "display_name": "R",
        "language": "R",
        "interrupt_mode": "signal",
        "env": KERNEL_ENV,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    (spec_dir / "kernel.json").chmod(0o644)
    for logo in ("logo-64x64.png", "logo-svg.svg"):
        for site in (
            Path("/usr/lib/R/site-library/IRkernel/kernelspec"),
            Path("/usr/local/lib/R/site-library/IRkernel/kernelspec"),
        ):
            if (site / logo).is_file():
                shutil.copyfile(site / logo, spec_dir / logo)
                (spec_dir / logo).chmod(0o644)
                break


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise WorkspaceStartError(
            f"'{name}' is not installed on this machine: the template's R needs "
            "r-base-core (apt-get install r-base-core r-cran-irkernel)."
        )
    return found
