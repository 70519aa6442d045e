"""The extract step: main text and language of crawled pages, books passed through, as documents."""
