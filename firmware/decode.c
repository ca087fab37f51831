typedef int el_placeholder_decode;
