typedef int el_placeholder_mlog;
