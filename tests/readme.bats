#!/usr/bin/env bats
# The README's "study by hand" shell block runs as written and prints what it promises.
load test_helper

@test "the README's composition by hand runs" {
    awk '/^## The study by hand/ { on = 1 } on && /^```sh$/ { inblock = 1; next } inblock && /^```$/ { exit } inblock' \
        "$BATS_TEST_DIRNAME/../README.md" >study.sh
    [ "$(wc -l <study.sh)" -ge 5 ]
    run --separate-stderr -0 bash -eo pipefail study.sh
    [[ ${lines[0]} == model* ]]
    [ "${#lines[@]}" -eq 5 ]
    [[ ${lines[4]} == *"test items per user" ]]
    [ -s teacher.kd ] && [ -s rrd.kd ]
}

@test "the README's layer map places every lib/ module, and no include reaches up a layer" {
    run --separate-stderr -0 sh "$BATS_TEST_DIRNAME/../tools/check-layers.sh"
    [[ $output == "check-layers: "*" modules in 4 layers, "*" includes, none reaching up, no cycle" ]]
    [ -z "$stderr" ]
}

@test "the layer check fails on an include up a layer, a cycle, and a module without a layer" {
    cp -R "$BATS_TEST_DIRNAME/../README.md" "$BATS_TEST_DIRNAME/../lib" "$BATS_TEST_DIRNAME/../tools" .
    cp lib/kd_csr.c csr.orig
    printf '#include "kd_eval.h"\n' >>lib/kd_csr.c
    run --separate-stderr -1 sh tools/check-layers.sh .
    [[ $stderr == *"lib/kd_csr.c:"*": kd_csr (base) includes kd_eval.h (engine): a layer up"* ]]
    cp csr.orig lib/kd_csr.c
    printf '#include "kd_eval.h"\n' >>lib/kd_rank.h   # one layer, but kd_eval.c includes kd_rank.h
    run --separate-stderr -1 sh tools/check-layers.sh .
    [[ $stderr == "check-layers: include cycle among: "*kd_eval*kd_rank* || $stderr == "check-layers: include cycle among: "*kd_rank*kd_eval* ]]
    cp "$BATS_TEST_DIRNAME/../lib/kd_rank.h" lib/
    : >lib/kd_orphan.c
    run --separate-stderr -1 sh tools/check-layers.sh .
    [ "$stderr" = "lib/kd_orphan.c: module kd_orphan is in no layer of README.md's layer map" ]
    rm lib/kd_orphan.c
    run --separate-stderr -0 sh tools/check-layers.sh .
}
