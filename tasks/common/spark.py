"""One SparkSession per process, from `SparkConfig` (local[*] here, a master URL on a cluster)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from pyspark.sql import DataFrame, SparkSession

from tasks.config import SparkConfig


@contextmanager
def session_conf(spark: SparkSession, overrides: Mapping[str, str]) -> Iterator[None]:
    """Spark SQL settings set for the duration of a block (read when its actions run), then put
    back as they were, unset ones unset again."""
    saved = {key: spark.conf.get(key, None) for key in overrides}
    try:
        for key, value in overrides.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, value in saved.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)


def local_input_files(frame: DataFrame) -> list[Path] | None:
    """The files `frame` reads, as local paths (Spark hands out URL-encoded URIs: "my%20dir"),
    or None when any of them is not on the local file system (hdfs:, s3a:, ...)."""
    uris = frame.inputFiles()
    if not all(uri.startswith("file:") for uri in uris):
        return None
    return [Path(url2pathname(urlparse(uri).path)) for uri in uris]


def check_java() -> None:
    """Fail early with an install hint when no Java runtime is on PATH (Spark needs Java 17)."""
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise RuntimeError(
            "Java is not installed: Spark needs a Java 17 runtime. "
            "Install it (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )


def spark_session(config: SparkConfig) -> SparkSession:
    """The process's SparkSession; an existing one (e.g. a test fixture's) is reused."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    check_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(config.master)
        .appName("lmforge")
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
