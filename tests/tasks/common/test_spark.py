"""Session settings scoped to a block."""

from __future__ import annotations

import pytest

from tasks.common.spark import session_conf

KEY_SET = "spark.sql.execution.arrow.maxRecordsPerBatch"
KEY_UNSET = "spark.sql.parquet.columnarReaderBatchSize"


def test_session_conf_restores_set_and_unset_keys(spark) -> None:
    spark.conf.set(KEY_SET, "123")
    spark.conf.unset(KEY_UNSET)
    default = spark.conf.get(KEY_UNSET)
    with pytest.raises(RuntimeError):
        with session_conf(spark, {KEY_SET: "7", KEY_UNSET: "9"}):
            assert (spark.conf.get(KEY_SET), spark.conf.get(KEY_UNSET)) == ("7", "9")
            raise RuntimeError("the block fails")
    assert spark.conf.get(KEY_SET) == "123"
    assert spark.conf.get(KEY_UNSET) == default
    spark.conf.unset(KEY_SET)
