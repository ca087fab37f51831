typedef int el_placeholder_journal;
