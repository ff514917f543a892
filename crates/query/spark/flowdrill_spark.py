"""flowdrill's Spark driver: the pushed-down part of an analysis (docs/scale-out.md).

flowdrill (crates/query/src/spark.rs) starts this script with `python3 flowdrill_spark.py
MASTER` and writes one JSON request per line on its standard input; for each, the script reads
the store's bin files with Spark, keeps the records that match the filter (and, in bins that
straddle the selection's ends, the time range), groups them by bin and by the analysis' leaf
keys, and sums per group the weights and variance terms of the three metrics with the store's
threshold-sampling estimators. The groups are written as one Parquet file (zstd) at the path
the request names, and one JSON line answers on standard output. The hierarchy logic (HHH,
cross products, categories, top-N) stays in flowdrill.

A request:
    {"base": "/store", "files": [{"path": "/store/link=a/.../flows-...parquet", "rel":
     "link=a/.../flows-...parquet", "partial": false}], "filter": "proto = 6" | null,
     "range": "time_start >= TIMESTAMP '...' AND ..." | null, "group": [["src_addr_v4",
     "long"], ["time_start", "millis"], ...], "merge_schema": false, "output": "/tmp/x.parquet"}
An answer: {"ok": true, "rows": N, "bytes": B, "seconds": S} or {"ok": false, "error": "..."}.

Two more kinds of request serve the bound on records (--max-records), which the embedded
engine meets by re-thresholding the matching records: {"histogram": true, ...} returns the
matching records' (bytes, sample_z) pairs with their counts (flowdrill chooses the threshold),
and {"rethreshold": {"z": Z}, "files": [{..., "seed": S}], ...} re-thresholds the matching
records at Z, record by record with each bin's seeded random stream in file order, as the
embedded engine does, before grouping them.

MASTER is a Spark master URL (local[2], spark://host:7077, yarn) or a Spark Connect address
(sc://host:15002).
"""

import json
import os
import sys
import time
import urllib.parse


def session(master):
    from pyspark.sql import SparkSession

    if master.startswith("sc://"):
        # A Spark Connect client: the server owns the cluster's configuration, but these
        # are the session's own and the filter's time literals are UTC.
        s = SparkSession.builder.remote(master).getOrCreate()
        s.conf.set("spark.sql.session.timeZone", "UTC")
        s.conf.set(
            "spark.sql.shuffle.partitions", os.environ.get("FLOWDRILL_SPARK_PARTITIONS", "8")
        )
        return s
    b = SparkSession.builder.master(master).appName("flowdrill")
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": os.environ.get("FLOWDRILL_SPARK_PARTITIONS", "8"),
        "spark.driver.memory": os.environ.get("FLOWDRILL_SPARK_MEMORY", "2g"),
        # The groups come back to the driver; their size is bounded by its memory, not by
        # Spark's default 1 GB cap on collected results (0: no cap).
        "spark.driver.maxResultSize": os.environ.get("FLOWDRILL_SPARK_MAX_RESULT", "0"),
    }
    if master.startswith("local"):
        # Local mode listens on loopback only.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    for k, v in conf.items():
        b = b.config(k, v)
    s = b.getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s


def weights(F):
    """Per record, the weight and variance term of flows, packets and bytes (the store's
    estimators, in the order of operations of flowdrill_query::WeightColumns::get, so that
    each term is the same double)."""
    x = F.col("bytes")
    z = F.col("sample_z")
    pk = F.col("packets").cast("double")
    first = F.col("continued") == 0
    sampled = (z > 0) & (x < z)
    p = x.cast("double") / z.cast("double")
    q = (F.lit(1.0) - p) / (p * p)
    zero = F.lit(0.0)
    return [
        ("w_flows", F.when(~first, zero).when(sampled, F.lit(1.0) / p).otherwise(F.lit(1.0))),
        ("v_flows", F.when(first & sampled, q).otherwise(zero)),
        ("w_packets", F.when(sampled, pk / p).otherwise(pk)),
        ("v_packets", F.when(sampled, (pk * pk) * q).otherwise(zero)),
        ("w_bytes", F.when(sampled, z.cast("double")).otherwise(x.cast("double"))),
        ("v_bytes", F.when(sampled, z.cast("double") * (z - x).cast("double")).otherwise(zero)),
    ]


# The query layer's re-thresholding random numbers (flowdrill_store::sampling::Rng, a
# SplitMix64 stream through flowdrill_model::hll::mix64): the n-th draw (from 1) of a bin whose
# seed is s is mix64(s + n * GOLDEN) >> 11, scaled to [0, 1).
GOLDEN = 0x9E3779B97F4A7C15


def draws(seeds):
    """A pandas UDF: per record, the uniform draw of its bin (`_file`) at its index `_n`."""
    import numpy as np
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def draw(files: pd.Series, n: pd.Series) -> pd.Series:
        cache = {}
        for uri in files.unique():
            cache[uri] = seeds(uri)
        with np.errstate(over="ignore"):
            k = files.map(cache).to_numpy(dtype=np.uint64)
            k = k + n.to_numpy().astype(np.uint64) * np.uint64(GOLDEN)
            k ^= k >> np.uint64(33)
            k = k * np.uint64(0xFF51AFD7ED558CCD)
            k ^= k >> np.uint64(33)
            k = k * np.uint64(0xC4CEB9FE1A85EC53)
            k ^= k >> np.uint64(33)
        return pd.Series((k >> np.uint64(11)).astype(np.float64) * (1.0 / float(1 << 53)))

    return draw


def rethreshold(F, df, z_new, seeds):
    """The matching records re-thresholded at `z_new` as Engine::load does it
    (flowdrill_store::sampling::rethreshold_mask over each bin's matching records in file
    order): a record kept at z_old is kept with probability p = min(1, x/z_new)/min(1, x/z_old),
    drawing a number only when p < 1, from its bin's stream; kept records count at
    max(z_old, z_new)."""
    from pyspark.sql import Window

    x = F.col("bytes")
    zo = F.col("sample_z")
    zn = F.lit(z_new).cast("long")

    def kp(z):
        return F.when((z == 0) | (x >= z), F.lit(1.0)).otherwise(
            x.cast("double") / z.cast("double")
        )

    p = kp(zn) / kp(zo)
    df = df.withColumn("_p", p).withColumn("_needs", (zn > zo) & (F.col("_p") < F.lit(1.0)))
    order = Window.partitionBy("_file").orderBy("_row").rowsBetween(
        Window.unboundedPreceding, Window.currentRow
    )
    df = df.withColumn("_n", F.sum(F.col("_needs").cast("long")).over(order))
    df = df.withColumn("_u", draws(seeds)(F.col("_file"), F.col("_n")))
    df = df.where(~F.col("_needs") | (F.col("_u") < F.col("_p")))
    return df.withColumn("sample_z", F.greatest(zo.cast("long"), zn))


def bin_of(files):
    """The function from a file URI Spark reports to the index of its bin in the request."""
    rels = [f["rel"] for f in files]
    memo = {}

    def index(uri):
        if uri not in memo:
            path = urllib.parse.unquote(urllib.parse.urlparse(uri).path or uri)
            match = [i for i, r in enumerate(rels) if path.endswith("/" + r) or path == r]
            if len(match) != 1:
                raise ValueError("cannot tell which bin %s is" % uri)
            memo[uri] = match[0]
        return memo[uri]

    return index


def run(spark, req):
    from pyspark.sql import functions as F

    t0 = time.time()
    files = req["files"]
    base = req["base"]
    rt = req.get("rethreshold")
    frames = []
    for partial in (False, True):
        paths = [f["path"] for f in files if f["partial"] == partial]
        if not paths:
            continue
        reader = spark.read.option("basePath", base)
        if req.get("merge_schema"):
            reader = reader.option("mergeSchema", "true")
        df = reader.parquet(*paths)
        extra = [F.input_file_name().alias("_file")]
        if rt:
            # The record's position in its file: the order of the bin's random draws.
            extra.append(F.col("_metadata.row_index").alias("_row"))
        df = df.select("*", *extra)
        if req.get("filter"):
            df = df.where(req["filter"])
        if partial and req.get("range"):
            df = df.where(req["range"])
        frames.append(df)
    if not frames:
        raise ValueError("no files to read")
    df = frames[0]
    for other in frames[1:]:
        df = df.unionByName(other, allowMissingColumns=True)
    if req.get("histogram"):
        # The matching records' (bytes, threshold) pairs with their counts: what choosing the
        # re-sampling threshold needs.
        out = df.groupBy(
            F.col("bytes").cast("long").alias("bytes"),
            F.col("sample_z").cast("long").alias("sample_z"),
        ).agg(F.count(F.lit(1)).alias("_records"))
        return write(out, req, t0)
    index = bin_of(files)
    if rt:
        seed = [int(f["seed"]) for f in files]
        df = rethreshold(F, df, int(rt["z"]), lambda uri: seed[index(uri)])
    # Groups are keyed by the index of their bin in the request, an int joined from the few
    # file URIs, not by the URI: with millions of groups (a source per bin), the strings
    # were most of what the driver collected.
    bins = spark.createDataFrame(
        [(u, index(u)) for u in sorted(set(df.inputFiles()))], "_file string, _bin int"
    )
    df = df.join(F.broadcast(bins), "_file", "left")
    keys = [F.col("_bin")]
    for name, kind in req["group"]:
        if kind == "millis":
            keys.append(F.unix_millis(F.col(name)).alias(name))
        elif kind == "binary":
            keys.append(F.col(name).cast("binary").alias(name))
        else:
            keys.append(F.col(name).cast("long").alias(name))
    w = weights(F)
    df = df.select(*keys, F.col("sample_z"), *[e.alias(n) for n, e in w])
    aggs = [F.count(F.lit(1)).alias("_records"), F.max("sample_z").alias("_z_max")]
    aggs += [F.sum(n).alias(n) for n, _ in w]
    key_names = ["_bin"] + [n for n, _ in req["group"]]
    out = df.groupBy(*key_names).agg(*aggs)
    return write(out, req, t0, check_bins=True)


# True when the session's master is local (this machine's files are the executors' files).
LOCAL = False


def write(out, req, t0, check_bins=False):
    """Collects `out` and writes it where the request says.

    With a local master, Spark writes the groups itself (in parallel, as Parquet parts next to
    the output) and this process joins the parts: the groups never pass through the driver
    JVM, whose heap would otherwise have to hold them all at once (a series over 10 M records
    returns about one group per record). With a cluster or Spark Connect, the executors'
    files are not this machine's: the groups are collected through the driver."""
    import pyarrow.parquet as pq

    table = None
    if LOCAL:
        import shutil

        import pyarrow.dataset as ds

        parts = req["output"] + ".parts"
        try:
            out.write.mode("overwrite").parquet(parts)
            files = sorted(
                os.path.join(parts, f) for f in os.listdir(parts) if f.endswith(".parquet")
            )
            if files:
                table = ds.dataset(files, format="parquet").to_table()
        finally:
            shutil.rmtree(parts, ignore_errors=True)
    if table is None:
        table = to_arrow(out)
    if check_bins and table.column("_bin").null_count:
        raise ValueError("cannot tell which bin some records came from")
    pq.write_table(table, req["output"], compression="zstd")
    return {
        "ok": True,
        "rows": table.num_rows,
        "bytes": os.path.getsize(req["output"]),
        "seconds": round(time.time() - t0, 3),
    }


def to_arrow(df):
    if hasattr(df, "toArrow"):
        return df.toArrow()
    import pyarrow as pa

    return pa.Table.from_pandas(df.toPandas(), preserve_index=False)


def describe(e):
    """One line for an exception: its first line, and for a Java error (Py4J) the Java
    exception and its root cause, which the first line does not name."""
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    if not lines:
        return type(e).__name__
    text = lines[0]
    java = [x[2:] for x in lines[1:] if x.startswith(": ")]
    if java:
        text += " " + java[0]
    causes = [x for x in lines if x.startswith("Caused by:")]
    if causes and causes[-1][len("Caused by:"):].strip() not in text:
        text += " ... " + causes[-1]
    return text[:2000]


def main():
    if len(sys.argv) != 2:
        print("usage: flowdrill_spark.py MASTER", file=sys.stderr)
        return 2
    global LOCAL
    LOCAL = sys.argv[1].startswith("local")
    try:
        spark = session(sys.argv[1])
    except Exception as e:  # noqa: BLE001 - reported to flowdrill as text
        print(json.dumps({"ok": False, "error": "cannot start Spark: %s" % e}), flush=True)
        return 1
    print(json.dumps({"ok": True, "ready": True, "version": spark.version}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = run(spark, json.loads(line))
        except Exception as e:  # noqa: BLE001 - reported to flowdrill as text
            text = describe(e)
            if "Connection refused" in text or "heap space" in text or "OutOfMemory" in text:
                # A local driver JVM that ran out of memory dies and leaves only this.
                text += (" (the Spark driver may have run out of memory: results are collected"
                         " there; raise FLOWDRILL_SPARK_MEMORY, now %s)"
                         % os.environ.get("FLOWDRILL_SPARK_MEMORY", "2g"))
            answer = {"ok": False, "error": text}
        print(json.dumps(answer), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
