"""The crawl step: pages fetched breadth-first over HTTP in Spark, plus books from a folder."""
