#!/usr/bin/env bats
# The contract every tool shares: --help, --version, misuse exits 2 with one line.
load test_helper

TOOLS="kd-info kd-cat kd-gen kd-train kd-eval kd-distill kd-report kd-cache kd-quant"

@test "every tool prints help on stdout and exits 0" {
    for t in $TOOLS; do
        run --separate-stderr -0 "$t" --help
        [[ $output == usage:* ]]
        [ -z "$stderr" ]
    done
}

@test "every tool prints its version" {
    for t in $TOOLS; do
        run --separate-stderr -0 "$t" --version
        [[ $output == "$t (kdrec) "* ]]
    done
}

@test "an unknown option is a usage error (exit 2) for every tool" {
    for t in $TOOLS; do
        run --separate-stderr -2 "$t" --no-such-option
        [[ $stderr == *"$t"* ]]
        [ -z "$output" ]
    done
}

@test "a bad number is a usage error naming the option" {
    run --separate-stderr -2 kd-gen synth --users abc -o x.kd
    [ "$stderr" = "kd-gen: --users: not a non-negative integer: 'abc'" ]
    [ ! -e x.kd ]
    run --separate-stderr -2 kd-gen synth --test-ratio 1.5 -o x.kd
    [[ $stderr == "kd-gen: --test-ratio: 1.5 is out of range"* ]]
}

@test "binary output is refused on a terminal" {
    command -v script >/dev/null || skip "script(1) not installed"
    run script -qec "$KD_BIN/kd-gen synth --users 5 --items 5 --mean 2" /dev/null
    [ "$status" -eq 2 ]
    [[ $output == *"refusing to write binary data to a terminal"* ]]
}
