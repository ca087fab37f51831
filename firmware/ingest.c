typedef int el_placeholder_ingest;
