typedef int el_placeholder_status;
