"""The R template, end to end: an R kernel (IRkernel, kernel name 'ir') through the
proxy, Balsam's R package reaching the project's bucket (Parquet, CSV, tags and
metadata) and agreeing with Python byte for byte, the lock naming R and its packages,
and the R kernel opening no TCP port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import Kernel, wait_state, ws_path
from tests.web.workspaces.test_live import _tcp_listeners


@pytest.fixture(scope="module")
def r_user(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    from tests.fixtures.app import _make_user

    user = _make_user(ctx, app, "ranvandare", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def r_ws(r_user: TestUser, supervisor: Any) -> Iterator[dict[str, Any]]:
    project = r_user.client.post(
        "/api/v1/projects", json={"name": "R-projekt", "description": "", "branchName": "main"}
    ).json()
    created = r_user.client.post(
        "/api/v1/workspaces",
        json={"name": "R", "templateId": "r", "projectId": project["id"], "branchId": "main"},
    )
    assert created.status_code == 201, created.text
    body = wait_state(r_user, created.json()["id"], "running")
    yield {**body, "bucket": project["bucket"]}
    r_user.client.delete(f"/api/v1/workspaces/{body['id']}")


@pytest.fixture(scope="module")
def r_kernel(live_url: str, r_user: TestUser, r_ws: dict[str, Any]) -> Iterator[Kernel]:
    kernel = Kernel(live_url, r_ws["id"], r_user.headers, name="ir")
    yield kernel
    kernel.close()


@pytest.fixture(scope="module")
def py_kernel(live_url: str, r_user: TestUser, r_ws: dict[str, Any]) -> Iterator[Kernel]:
    kernel = Kernel(live_url, r_ws["id"], r_user.headers)
    yield kernel
    kernel.close()


def _r(kernel: Kernel, code: str) -> str:
    result = kernel.execute(code, timeout=180)
    assert result.error is None, result
    return result.stdout


def test_an_r_kernel_runs_in_the_r_workspace(
    r_kernel: Kernel, r_ws: dict[str, Any], live_url: str, r_user: TestUser
) -> None:
    import httpx

    specs = httpx.get(
        f"{live_url}{ws_path(r_ws)}api/kernelspecs", headers=r_user.headers, timeout=30
    ).json()
    assert {"python3", "ir"} <= set(specs["kernelspecs"]), specs
    out = _r(r_kernel, 'cat(R.version$major, Sys.getenv("BALSAM_BUCKET"), sep = "|")')
    assert out == f"4|{r_ws['bucket']}"


def test_the_lock_names_r_its_packages_and_the_debian_packages(r_ws: dict[str, Any]) -> None:
    packages = r_ws["environment"]["packages"]
    assert packages["R"].startswith("4.")
    assert packages["R/balsam"] == "0.1.0"
    assert packages["R/IRkernel"] and packages["R/ggplot2"] and packages["R/reticulate"]
    assert packages["deb/r-base-core"] and packages["deb/r-cran-irkernel"]
    assert packages["pandas"] == "3.1.1" and packages["python"]


FRAME = """
df <- data.frame(
  n = c(1L, NA, 3L, -2147483647L),
  x = c(1.5, NA, NaN, -Inf),
  s = c("å", NA, "tre", ""),
  b = c(TRUE, NA, FALSE, TRUE),
  d = as.Date(c("2024-01-31", NA, "1970-01-01", "1900-03-01")),
  f = factor(c("låg", "hög", NA, "låg"), levels = c("låg", "hög")),
  stringsAsFactors = FALSE
)
"""


def test_parquet_from_r_is_read_by_python_and_r_alike(r_kernel: Kernel, py_kernel: Kernel) -> None:
    written = _r(
        r_kernel,
        FRAME + 'balsam::write_parquet(df, "main/från-r.parquet")\n'
        'raw <- balsam::get_object("main/från-r.parquet")\n'
        'cat(digest::digest(raw, algo = "sha256", serialize = FALSE))',
    )
    read = py_kernel.execute(
        "import boto3, hashlib, io, json, os, pyarrow.parquet as pq\n"
        "body = boto3.client('s3').get_object(Bucket=os.environ['BALSAM_BUCKET'],"
        " Key='main/från-r.parquet')['Body'].read()\n"
        "t = pq.read_table(io.BytesIO(body))\n"
        "print(json.dumps({'sha': hashlib.sha256(body).hexdigest(),"
        " 'types': [str(f.type) for f in t.schema],"
        " 'rows': {k: [str(v) for v in vs] for k, vs in t.to_pydict().items()}}))"
    )
    assert read.error is None, read
    found = json.loads(read.stdout)
    assert found["sha"] == written.strip()
    assert found["types"] == [
        "int32",
        "double",
        "string",
        "bool",
        "date32[day]",
        "dictionary<values=string, indices=int32, ordered=0>",
    ]
    assert found["rows"]["n"] == ["1", "None", "3", "-2147483647"]
    assert found["rows"]["x"] == ["1.5", "None", "nan", "-inf"]
    assert found["rows"]["s"] == ["å", "None", "tre", ""]
    assert found["rows"]["b"] == ["True", "None", "False", "True"]
    assert found["rows"]["d"] == ["2024-01-31", "None", "1970-01-01", "1900-03-01"]
    assert found["rows"]["f"] == ["låg", "hög", "None", "låg"]
    same = _r(
        r_kernel,
        'back <- balsam::read_parquet("main/från-r.parquet")\n'
        "cat(identical(back, df), all.equal(back, df), sep = '|')",
    )
    assert same == "TRUE|TRUE", same


def test_parquet_from_python_is_read_in_r_with_the_same_rows(
    r_kernel: Kernel, py_kernel: Kernel
) -> None:
    wrote = py_kernel.execute(
        "import boto3, io, os, pandas as pd\n"
        "df = pd.DataFrame([['uno', 1], ['dos', 2], ['tres', 3]], columns=['Nombre', 'Valor'])\n"
        "buf = io.BytesIO(); df.to_parquet(buf, engine='pyarrow')\n"
        "boto3.client('s3').put_object(Bucket=os.environ['BALSAM_BUCKET'],"
        " Key='main/från-python.parquet', Body=buf.getvalue())"
    )
    assert wrote.error is None, wrote
    out = _r(
        r_kernel,
        'df <- balsam::read_parquet("main/från-python.parquet")\n'
        "cat(nrow(df), paste(df$Nombre, collapse = ','), sum(df$Valor), class(df$Valor),"
        " sep = '|')",
    )
    assert out == "3|uno,dos,tres|6|integer"


def test_tags_and_metadata_set_in_r_are_seen_through_the_s3_api(
    r_kernel: Kernel, py_kernel: Kernel
) -> None:
    _r(
        r_kernel,
        "f <- tempfile(); write.csv(mtcars, f)\n"
        'balsam::put_object(f, "main/cars.csv", tags = list(color = "blue", size = "small"),'
        ' metadata = list(cat = "meow"))\n'
        'balsam::write_csv(data.frame(ord = c("ö", "ä")), "main/ord.csv")',
    )
    seen = py_kernel.execute(
        "import boto3, json, os\n"
        "s3, b = boto3.client('s3'), os.environ['BALSAM_BUCKET']\n"
        "tags = s3.get_object_tagging(Bucket=b, Key='main/cars.csv')['TagSet']\n"
        "meta = s3.head_object(Bucket=b, Key='main/cars.csv')['Metadata']\n"
        "print(json.dumps({'tags': {t['Key']: t['Value'] for t in tags}, 'meta': meta}))"
    )
    assert seen.error is None, seen
    assert json.loads(seen.stdout) == {
        "tags": {"color": "blue", "size": "small"},
        "meta": {"cat": "meow"},
    }
    out = _r(
        r_kernel,
        'tags <- balsam::get_tags("main/cars.csv")\n'
        'h <- balsam::head_object("main/cars.csv")\n'
        'back <- balsam::read_csv("main/ord.csv")\n'
        "cat(tags$color, tags$size, attr(h, 'x-amz-meta-cat'), paste(back$ord, collapse = ''),"
        " balsam::object_exists('main/nothing.csv'),"
        " any(grepl('^seaweed-', names(attributes(h)))), sep = '|')",
    )
    # The storage server's own headers are not the object's.
    assert out == "blue|small|meow|öä|FALSE|FALSE"


SCB_R_S3 = """
setup_env <- function() {{
    Sys.setenv("AWS_DEFAULT_REGION" = "")
}}
get_meta <- function(path, bucket) {{
    headers <- head_object(path, bucket, use_http = F)
    fields <- attributes(headers)
    meta <- list()
    for (i in seq(1,length(fields))){{
        value <- fields[i]
        name <- names(value)
        if (startsWith(name, "x-amz-meta-"))
             meta[name] = value
    }}
    return(meta)
}}
put_tags <- function(path, bucket, tags) {{
    tags_char <- character(length(tags))
    for (i in seq_along(tags)) {{
        tags_char[i] <- paste0("<Tag><Key>", names(tags)[i], "</Key><Value>",
                               unname(tags[[i]]), "</Value></Tag>")
    }}
    request_body <- paste0("<Tagging><TagSet>", paste0(tags_char, collapse = ""),
                           "</TagSet></Tagging>")
    tmpfile <- tempfile()
    cat(request_body, file = tmpfile)
    md <- base64enc::base64encode(digest::digest(file = tmpfile, raw = TRUE))
    r <- s3HTTP(verb = "PUT", bucket = bucket, path = path, query = list(tagging = ""),
        request_body = tmpfile,
        headers = list(`Content-Length` = file.size(tmpfile), `Content-MD5` = md),
        write_disk = NULL, parse_response = TRUE, base_url = Sys.getenv("AWS_S3_ENDPOINT"),
        region = "", key = Sys.getenv("AWS_ACCESS_KEY_ID"),
        secret = Sys.getenv("AWS_SECRET_ACCESS_KEY"), use_https = FALSE)
    return(TRUE)
}}
get_tags <- function(path, bucket) {{
    s3HTTP(verb = "GET", bucket = bucket, path = path, query = list(tagging = ""),
        headers = list(), request_body = "", parse_response = TRUE, use_https = FALSE)
}}
setup_env()
library(balsam)
bucketName <- '{bucket}'
fileName <- 'cars_test.csv'
tmp <- tempfile()
utils::write.csv(mtcars, file = tmp)
put_object(tmp, fileName, bucketName)
put_tags(fileName, bucketName, list(color = "blue", size = "small"))
meta <- get_meta(fileName, bucketName)
tags <- get_tags(fileName, bucketName)
raw <- get_object(fileName, bucketName, use_https = F)
cat(length(bucketlist()$Bucket) >= 1, tags$TagSet[[1]]$Key[[1]],
    nchar(rawToChar(raw)) == file.size(tmp), sep = "|")
"""


def test_scbs_aws_s3_style_calls_work_with_the_bucket_filled_in(
    r_kernel: Kernel, r_ws: dict[str, Any]
) -> None:
    """SCB's R-S3 notebook's own helpers (s3HTTP for tags, head_object for metadata) and
    its get_object(object, bucket) call, with only the bucket name filled in and
    library("minio.s3") pointed at balsam."""
    out = _r(r_kernel, SCB_R_S3.format(bucket=r_ws["bucket"]))
    assert out.endswith("TRUE|color|TRUE"), out


def test_the_r_kernel_opens_no_tcp_port(
    ctx: AppContext, r_kernel: Kernel, r_ws: dict[str, Any]
) -> None:
    """IRkernel binds what the connection file names: IPC files in the private
    runtime folder, like the Python kernel."""
    _r(r_kernel, "x <- 1")
    endpoint = ctx.providers.workspaces.endpoint(r_ws["id"])
    assert endpoint is not None
    if endpoint.socket_uid is None:
        pytest.skip("workspaces run under their own uid only as root")
    assert _tcp_listeners(endpoint.socket_uid) == set()


#: SCB's chart notebooks that cannot run here, and why (docs/r.md).
CHARTS_NOT_RUN = {
    "Diagramtyper i R_Flödes_diagram.ipynb": "DiagrammeR is not in Debian",
    "Diagramtyper i R_Organisationsschema.ipynb": "DiagrammeR is not in Debian",
    "Diagramtyper i R_Treemap.ipynb": "treemap is not in Debian",
    "Diagramtyper i R_Stavdiagram.ipynb": "fetches share prices from Yahoo",
    "Diagramtyper i R_Heatmap.ipynb": "calls ggplot() without library(ggplot2)",
}

RUN_CHARTS = """
import concurrent.futures, json, os, pathlib, subprocess, sys
folder = pathlib.Path.home() / "charts"
def run(notebook):
    done = subprocess.run(
        [os.path.join(sys.prefix, "bin", "jupyter"), "nbconvert", "--to", "notebook",
         "--execute", "--ExecutePreprocessor.kernel_name=ir",
         "--ExecutePreprocessor.timeout=300", "--output-dir", str(folder / "ran"),
         str(notebook)],
        capture_output=True, text=True)
    return notebook.name, done.returncode, done.stderr[-800:]
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    results = list(pool.map(run, sorted(folder.glob("*.ipynb"))))
print(json.dumps(results))
"""


def test_scbs_r_chart_notebooks_run_unmodified(
    live_url: str, r_user: TestUser, r_ws: dict[str, Any], py_kernel: Kernel
) -> None:
    """The notebooks of 'Exempelsamling diagramtyper i R', uploaded as they are through
    JupyterLab's contents API and executed with the 'ir' kernel in the workspace, two at
    a time; those that cannot run here are named with why (CHARTS_NOT_RUN)."""
    from urllib.parse import quote

    import httpx

    from tests.fixtures.library import SCB_LIBRARY

    folder = SCB_LIBRARY / "Resources" / "Exempelsamling diagramtyper i R"
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.name not in CHARTS_NOT_RUN)
    assert len(notebooks) == 40 and all((folder / name).is_file() for name in CHARTS_NOT_RUN), (
        "SCB's chart examples changed"
    )
    contents = f"{live_url}{ws_path(r_ws)}api/contents/charts"
    with httpx.Client(headers=r_user.headers, timeout=60) as client:
        assert client.put(contents, json={"type": "directory"}).status_code in (200, 201)
        for notebook in notebooks:
            body = {
                "type": "notebook",
                "format": "json",
                "content": json.loads(notebook.read_text()),
            }
            put = client.put(f"{contents}/{quote(notebook.name)}", json=body)
            assert put.status_code in (200, 201), put.text
    result = py_kernel.execute(RUN_CHARTS, timeout=1800)
    assert result.error is None, result
    failed = {name: err for name, code, err in json.loads(result.stdout) if code != 0}
    assert failed == {}, failed


def test_an_rprofile_or_renviron_in_a_notebooks_folder_does_not_run(
    live_url: str, r_user: TestUser, r_ws: dict[str, Any], py_kernel: Kernel
) -> None:
    """R reads .Rprofile and .Renviron of the folder it starts in: one committed next to
    a notebook would run as whoever opens it. The home's own are read instead."""
    planted = py_kernel.execute(
        "import pathlib\n"
        "folder = pathlib.Path.home() / 'rdelad'\n"
        "folder.mkdir(exist_ok=True)\n"
        "(folder / '.Rprofile').write_text('writeLines(\"x\", file.path(getwd(), \"RAN\"))\\n')\n"
        "(folder / '.Renviron').write_text('BALSAM_PLANTED=yes\\n')\n"
        "(pathlib.Path.home() / '.Renviron').write_text('BALSAM_OWN=ja\\n')"
    )
    assert planted.error is None, planted
    kernel = Kernel(live_url, r_ws["id"], r_user.headers, name="ir", notebook="rdelad/nb.ipynb")
    try:
        out = _r(
            kernel,
            'cat(file.exists("RAN"), Sys.getenv("BALSAM_PLANTED"), Sys.getenv("BALSAM_OWN"),'
            ' basename(getwd()), sep = "|")',
        )
    finally:
        kernel.close()
    assert out == "FALSE||ja|rdelad", out
