typedef int el_placeholder_core;
