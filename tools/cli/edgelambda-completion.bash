# edgelambda-completion.bash — bash completion for the edgelambda CLI,
# installed as share/bash-completion/completions/edgelambda (loaded on demand
# by the bash-completion package; `source` it by hand without that package).
#
# Design: self-contained (no bash-completion helpers). The command is the
# first word that is not an option (the values of --uri, --prefix and the
# credentials options are skipped); before it the global options and the command names complete,
# after it that command's options (a word starting with '-') and the values
# of --style, --qos and --acked-file. The lists mirror `edgelambda --help`
# and `edgelambda COMMAND --help`; tests/integration/test_man_pages.py
# checks both directions, so a new option must be added here too.

_edgelambda()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="query series last deadletters export verify status metrics recompute sync loadgen help"
    local ask="--json --timeout --uri --prefix --help"
    local cmd="" words="" i

    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --uri | --prefix | --username | --password-file | --cafile) i=$((i + 1)) ;;
        -*) ;;
        *)
            cmd=${COMP_WORDS[i]}
            break
            ;;
        esac
    done

    # Option values: offer the fixed choices, nothing where any text goes.
    case $prev in
    --style)
        words="json-ts json bare fields device z2m"
        ;;
    --qos)
        words="0 1 2"
        ;;
    --acked-file | --password-file | --cafile)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    --match)
        [ "$cmd" = query ] || return 0 # query's --match is a flag
        ;;
    --uri | --prefix | --username | --timeout | --from | --to | --step | --agg | --reason | --since | -n | \
        --series | --count | --seconds | --rate | --topic-prefix | --start-index | --ts-base | \
        --ts-step | --client-id | --window | --drain-timeout)
        return 0
        ;;
    esac

    if [ -z "$words" ]; then
        case $cmd in
        "")
            if [[ $cur == -* ]]; then words="--uri --prefix --username --password-file --cafile --help --version"; else words=$commands; fi
            ;;
        help)
            words=$commands
            ;;
        query) words="--match --from --to --step --agg $ask" ;;
        series) words="--match $ask" ;;
        last) words="--match -n $ask" ;;
        deadletters) words="--match --reason --since -n --replay $ask" ;;
        export) words="--series --match --from --to --format --dir --help" ;;
        verify) words="--dir --sample --help" ;;
        status) words="$ask" ;;
        metrics) words="$ask" ;;
        recompute) words="--full $ask" ;;
        sync) words="--retry-parked $ask" ;;
        loadgen)
            words="--series --count --seconds --rate --qos --style --topic-prefix --start-index
                --ts-base --ts-step --client-id --window --acked-file --drain-timeout --progress
                --quiet --uri --prefix --help"
            ;;
        *) return 0 ;;
        esac
        # After the command only options complete (series names are the daemon's).
        if [ -n "$cmd" ] && [ "$cmd" != help ] && [[ $cur != -* ]]; then
            return 0
        fi
    fi
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    return 0
}

complete -F _edgelambda edgelambda
