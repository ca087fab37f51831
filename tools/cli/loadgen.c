typedef int el_placeholder_loadgen;
