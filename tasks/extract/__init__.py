"""The extract step: main text and language of crawled pages and WARC/WET records, with books
and dumps language-checked, as documents."""
