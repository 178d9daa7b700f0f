# The project's bucket from R. Keys are paths in the bucket, e.g. "main/x.parquet"
# (a branch's data lives under "<branch>/"). Connection and bucket come from the
# workspace's environment: BALSAM_BUCKET, AWS_ENDPOINT_URL (or JUPYTERLAB_S3_ENDPOINT)
# and the workspace's key (JUPYTERLAB_S3_ACCESS_KEY_ID/..., or AWS_ACCESS_KEY_ID/...).

.state <- new.env(parent = emptyenv())

.py <- function() {
  if (is.null(.state$py)) {
    .state$py <- reticulate::import_from_path(
      "balsam_r", system.file("python", package = "balsam"), convert = FALSE
    )
  }
  .state$py
}

.env <- function(...) {
  for (name in c(...)) {
    value <- Sys.getenv(name)
    if (nzchar(value)) return(value)
  }
  ""
}

.conn <- function() {
  endpoint <- .env("AWS_ENDPOINT_URL", "JUPYTERLAB_S3_ENDPOINT", "BALSAM_S3_ENDPOINT")
  if (!nzchar(endpoint)) {
    stop("No S3 endpoint: balsam's functions run in a Balsam workspace (AWS_ENDPOINT_URL).",
         call. = FALSE)
  }
  if (!grepl("^https?://", endpoint)) endpoint <- paste0("http://", endpoint)
  list(
    endpoint = endpoint,
    key = .env("JUPYTERLAB_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
    secret = .env("JUPYTERLAB_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    region = if (nzchar(.env("AWS_REGION", "AWS_DEFAULT_REGION"))) {
      .env("AWS_REGION", "AWS_DEFAULT_REGION")
    } else {
      "us-east-1"
    }
  )
}

#' The project's bucket (BALSAM_BUCKET).
bucket <- function() {
  name <- Sys.getenv("BALSAM_BUCKET")
  if (!nzchar(name)) {
    stop("BALSAM_BUCKET is not set: balsam's functions run in a Balsam workspace.",
         call. = FALSE)
  }
  name
}

.key <- function(key) {
  if (!is.character(key) || length(key) != 1 || is.na(key) || !nzchar(key)) {
    stop("A key is one path in the bucket, e.g. \"main/data.parquet\".", call. = FALSE)
  }
  sub("^/+", "", key)
}

# aws.s3's calls name the bucket as their second or third argument; the functions here
# take it where it is the project's bucket (or any string when `bucket` is named).
.is_bucket <- function(x) is.character(x) && length(x) == 1 && identical(x, Sys.getenv("BALSAM_BUCKET"))

.strings <- function(x) {
  if (length(x) == 0) return(reticulate::dict())
  if (is.null(names(x)) || any(!nzchar(names(x)))) {
    stop("Tags and metadata are named lists, e.g. list(color = \"blue\").", call. = FALSE)
  }
  values <- vapply(x, function(v) as.character(v)[[1]], character(1))
  reticulate::r_to_py(as.list(values))
}

.body <- function(file) {
  if (is.raw(file)) return(file)
  if (is.character(file) && length(file) == 1 && file.exists(file)) {
    return(readBin(file, "raw", file.info(file)$size))
  }
  if (is.character(file)) return(charToRaw(enc2utf8(paste(file, collapse = "\n"))))
  stop("`file` is a path to a file or a raw vector.", call. = FALSE)
}

#' Store a local file (or a raw vector) under `key`, with tags and metadata.
#' Also aws.s3's put_object(file, object, bucket).
put_object <- function(file, key, tags = list(), metadata = list(), bucket = NULL,
                       content_type = "", ...) {
  if (.is_bucket(tags) || (is.character(tags) && length(tags) == 1)) {
    bucket <- tags
    tags <- list()
  }
  .py()$put(.conn(), .bucket_or(bucket), .key(key),
            .body(file), .strings(tags), .strings(metadata), content_type)
  invisible(TRUE)
}

#' The object under `key`: written to `file` (returned invisibly), or returned as a raw
#' vector. Also aws.s3's get_object(object, bucket): a second argument that is the
#' project's bucket names the bucket.
get_object <- function(key, file = NULL, bucket = NULL, ...) {
  if (is.null(bucket) && .is_bucket(file)) {
    bucket <- file
    file <- NULL
  }
  body <- reticulate::py_to_r(.py()$get(.conn(), .bucket_or(bucket), .key(key)))
  if (is.null(file)) return(body)
  writeBin(body, file)
  invisible(file)
}

#' The object's tags, a named list.
get_tags <- function(key, bucket = NULL) {
  tags <- reticulate::py_to_r(.py()$get_tags(.conn(), .bucket_or(bucket), .key(key)))
  as.list(unlist(tags))
}

#' Replace the object's tags.
put_tags <- function(key, tags, bucket = NULL) {
  .py()$put_tags(.conn(), .bucket_or(bucket), .key(key), .strings(tags))
  invisible(TRUE)
}

#' TRUE with the object's headers as attributes (x-amz-meta-* is its metadata), FALSE
#' if there is no such object, as aws.s3's head_object.
head_object <- function(key, bucket = NULL, ...) {
  headers <- reticulate::py_to_r(.py()$head(.conn(), .bucket_or(bucket), .key(key)))
  if (is.null(headers)) return(FALSE)
  out <- TRUE
  for (name in names(headers)) attr(out, name) <- headers[[name]]
  out
}

object_exists <- function(key, bucket = NULL) isTRUE(as.logical(head_object(key, bucket)))

#' The buckets this workspace's key may list (aws.s3's bucketlist).
bucketlist <- function(...) {
  rows <- reticulate::py_to_r(.py()$buckets(.conn()))
  data.frame(
    Bucket = vapply(rows, function(r) r[[1]], character(1)),
    CreationDate = vapply(rows, function(r) r[[2]], character(1)),
    stringsAsFactors = FALSE
  )
}

#' One signed S3 request, as aws.s3's s3HTTP (the arguments SCB's notebooks pass:
#' base_url, region, key, secret and the like are taken from the workspace instead).
s3HTTP <- function(verb = "GET", bucket = "", path = "", query = NULL, headers = list(),
                   request_body = "", write_disk = NULL, parse_response = TRUE, ...) {
  body <- if (is.raw(request_body)) {
    request_body
  } else if (is.character(request_body) && length(request_body) == 1 &&
             nzchar(request_body) && file.exists(request_body)) {
    readBin(request_body, "raw", file.info(request_body)$size)
  } else {
    charToRaw(enc2utf8(paste(request_body, collapse = "")))
  }
  headers <- headers[!tolower(names(headers)) %in% c("content-length", "content-md5")]
  answer <- reticulate::py_to_r(.py()$request(
    .conn(), verb, bucket, path, .strings(as.list(query)), .strings(as.list(headers)), body
  ))
  status <- answer[[1]]
  content <- answer[[3]]
  if (status >= 300) {
    stop(sprintf("S3 answered %d: %s", status, rawToChar(content)), call. = FALSE)
  }
  if (!is.null(write_disk)) {
    writeBin(content, write_disk)
    return(invisible(write_disk))
  }
  text <- if (length(content)) rawToChar(content) else ""
  if (parse_response && nzchar(text) && requireNamespace("xml2", quietly = TRUE) &&
      grepl("xml", answer[[2]][["content-type"]] %||% "")) {
    parsed <- xml2::as_list(xml2::read_xml(text))
    return(parsed[[1]])
  }
  out <- if (nzchar(text)) text else TRUE
  for (name in names(answer[[2]])) attr(out, name) <- answer[[2]][[name]]
  out
}

`%||%` <- function(a, b) if (is.null(a)) b else a

.bucket_or <- function(bucket) bucket %||% balsam::bucket()

# -- data frames ------------------------------------------------------------------------

.numbers <- function(x, size) writeBin(x, raw(), size = size, endian = "little")

# Columns cross as raw bytes with R's own NAs in them (Python reads those as nulls).
# Strings cross as a dictionary: the distinct values once (NUL-terminated, UTF-8) and a
# 1-based code per row: R's match() and indexing are fast where building one string per
# row on the Python side is not.
.column <- function(x) {
  plain <- function(kind, data) list(kind, data, raw(), 0L)
  coded <- function(kind, codes, levels) {
    list(kind, .numbers(codes, 4), writeBin(enc2utf8(levels), raw()), length(levels))
  }
  if (is.factor(x)) return(coded("factor", as.integer(x), levels(x)))
  if (inherits(x, "Date")) return(plain("Date", .numbers(as.double(unclass(x)), 8)))
  if (inherits(x, "POSIXct")) return(plain("POSIXct", .numbers(as.double(unclass(x)), 8)))
  switch(typeof(x),
    double = plain("double", .numbers(x, 8)),
    integer = plain("integer", .numbers(x, 4)),
    logical = plain("logical", .numbers(x, 4)),  # as R holds it: 1, 0, NA as INT_MIN
    character = {
      levels <- unique(x)
      levels <- levels[!is.na(levels)]
      coded("character", match(x, levels), levels)
    },
    stop(sprintf("Cannot store a column of type %s in Parquet.", typeof(x)), call. = FALSE)
  )
}

# A data frame as the Python half takes it: (names, kinds, rows, data, levels, counts).
.handover <- function(df) {
  df <- as.data.frame(df)
  columns <- unname(lapply(df, .column))  # a named list would reach Python as a dict
  part <- function(i) reticulate::r_to_py(lapply(columns, `[[`, i))
  list(
    reticulate::r_to_py(as.list(names(df))), part(1), as.integer(nrow(df)), part(2), part(3),
    reticulate::r_to_py(as.list(vapply(columns, `[[`, 0L, 4)))
  )
}

.parquet <- function(df) {
  h <- .handover(df)
  reticulate::py_to_r(.py()$encode(h[[1]], h[[2]], h[[3]], h[[4]], h[[5]], h[[6]]))
}

.decoded_column <- function(col, n) {
  kind <- col[[1]]
  data <- col[[2]]
  doubles <- function() readBin(data, "double", n, size = 8, endian = "little")
  ints <- function(what = "integer") readBin(data, what, n, size = 4, endian = "little")
  if (kind %in% c("factor", "character")) {
    levels <- readBin(col[[3]], "character", col[[4]])
    Encoding(levels) <- "UTF-8"
    codes <- ints()
    if (kind == "character") return(levels[codes])
    if (!anyDuplicated(levels)) return(structure(codes, levels = levels, class = "factor"))
    return(factor(levels[codes], levels = unique(levels)))
  }
  switch(kind,
    double = doubles(),
    integer = ints(),
    logical = ints("logical"),
    Date = structure(doubles(), class = "Date"),
    POSIXct = structure(doubles(), class = c("POSIXct", "POSIXt"), tzone = "UTC")
  )
}

# A data frame of what the Python half's decode (or get_frame) returned.
.frame <- function(decoded) {
  decoded <- reticulate::py_to_r(decoded)
  n <- decoded[[1]]
  columns <- lapply(decoded[[3]], .decoded_column, n = n)
  names(columns) <- unlist(decoded[[2]])
  attr(columns, "row.names") <- .set_row_names(n)
  class(columns) <- "data.frame"
  columns
}

#' Write a data frame as Parquet under `key` in the project's bucket. The file is made
#' and stored on the Python side: its bytes never pass through R's memory.
write_parquet <- function(df, key, tags = list(), metadata = list()) {
  h <- .handover(df)
  .py()$put_frame(.conn(), bucket(), .key(key), h[[1]], h[[2]], h[[3]], h[[4]], h[[5]], h[[6]],
                  .strings(tags), .strings(metadata))
  invisible(key)
}

#' A data frame from Parquet: the object under `key` in the project's bucket, or a raw
#' vector (what get_object returns).
read_parquet <- function(key) {
  if (is.raw(key)) return(.frame(.py()$decode(key)))
  .frame(.py()$get_frame(.conn(), bucket(), .key(key)))
}

#' Write a data frame as CSV (UTF-8) under `key`.
write_csv <- function(df, key, tags = list(), metadata = list(), ...) {
  file <- tempfile(fileext = ".csv")
  on.exit(unlink(file))
  utils::write.csv(df, file, row.names = FALSE, fileEncoding = "UTF-8", ...)
  put_object(file, key, tags = tags, metadata = metadata, content_type = "text/csv")
  invisible(key)
}

#' A data frame from the CSV under `key`.
read_csv <- function(key, ...) {
  file <- tempfile(fileext = ".csv")
  on.exit(unlink(file))
  get_object(key, file)
  utils::read.csv(file, fileEncoding = "UTF-8", check.names = FALSE, ...)
}
