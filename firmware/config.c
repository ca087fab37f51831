typedef int el_placeholder_config;
