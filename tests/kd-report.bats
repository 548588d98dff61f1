#!/usr/bin/env bats
# kd-report: its numbers are the evaluation files' numbers, it tells models apart by
# provenance (never by file name), and its HTML/SVG are well-formed.
load test_helper

# models of one seed directory, named as the seed pipeline names them: a plain student at
# two learning rates (the lr x reg grid), and int8 / int4 quantisations
models() { # models DIR SEED
    local d=$1 s=$2 tr="--epochs 2 --seed $2"
    small_dataset "$s" "$d/data.kd"
    kd-train -q --dim 8 $tr "$d/data.kd" -o "$d/teacher.kd"
    kd-train -q --dim 4 $tr "$d/data.kd" -o "$d/student.kd"
    kd-train -q --dim 4 --lr 0.1 $tr "$d/data.kd" -o "$d/student_lr0.1.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method margin-mse --alpha 0.5 --lr 0.01 --dim 4 $tr "$d/data.kd" -o "$d/study.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method margin-mse --alpha 0.1 --dim 4 $tr "$d/data.kd" -o "$d/margin-mse_a0.1.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method rrd --lambda 0.1 --dim 4 $tr "$d/data.kd" -o "$d/rrd_l0.1.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method rrd --lambda 1 --dim 4 $tr "$d/data.kd" -o "$d/rrd_l1.kd"
    kd-quant -q --bits 8 "$d/teacher.kd" -o "$d/teacher_q8.kd"
    kd-quant -q --bits 4 "$d/student.kd" -o "$d/student_q4.kd"
}
ORDER="teacher student student_lr0.1 study margin-mse_a0.1 rrd_l0.1 rrd_l1 teacher_q8 student_q4"

# id..source: the identity columns kd-eval writes, by name
ident() {
    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i }
                { print $c["id"] "\t" $c["role"] "\t" $c["method"] "\t" $c["knob"] "\t" $c["knob_value"] "\t" $c["seed"] "\t" $c["teacher"] "\t" $c["quant"] "\t" $c["source"] }' "$1"
}

# two seeds of real models, with hand-made numbers beside kd-eval's identity columns: the
# study's 64 -> 32 sizes (1500 rows: 390000 bytes in float at 64, 198000 at 32, 114000 at
# int8 64, 42000 at int4 32)
setup() {
    for s in 1 2; do
        mkdir -p run/s$s
        models run/s$s $s
        kd-eval --no-timing -k 10 --reference run/s$s/teacher.kd run/s$s/data.kd $(for m in $ORDER; do echo run/s$s/$m.kd; done) >real.tsv
        ident real.tsv >id.tsv
        q8=$([ $s = 1 ] && echo 0.305 || echo 0.295)
        { printf 'model\tkind\tdim\tparams\tbytes\tcompression\tcompression_bytes\trecall@10\tndcg@10\tusers\tskipped\tlat_mean_us\tlat_p99_us\n'
          printf 'teacher\tbpr\t64\t97500\t390000\t1\t1\t0.30%s\t0.20%s\t100\t0\t5\t9\n' $s $s
          printf 'student\tbpr\t32\t49500\t198000\t1.9697\t1.9697\t0.20%s\t0.10%s\t100\t0\t4\t8\n' $s $s
          printf 'student_lr0.1\tbpr\t32\t49500\t198000\t1.9697\t1.9697\t0.21%s\t0.11%s\t100\t0\t4\t8\n' $s $s
          printf 'study\tdistill-margin-mse\t32\t49500\t198000\t1.9697\t1.9697\t0.18%s\t0.09%s\t100\t0\t4\t8\n' $s $s
          printf 'margin-mse_a0.1\tdistill-margin-mse\t32\t49500\t198000\t1.9697\t1.9697\t0.19%s\t0.09%s\t100\t0\t4\t8\n' $s $s
          printf 'rrd_l0.1\tdistill-rrd\t32\t49500\t198000\t1.9697\t1.9697\t0.25%s\t0.15%s\t100\t0\t4\t8\n' $s $s
          printf 'rrd_l1\tdistill-rrd\t32\t49500\t198000\t1.9697\t1.9697\t0.29%s\t0.19%s\t100\t0\t4\t8\n' $s $s
          printf 'teacher_q8\tbpr+q8asym\t64\t97500\t114000\t1\t3.4211\t%s\t0.19%s\t100\t0\t5\t9\n' $q8 $s
          printf 'student_q4\tbpr+q4asym\t32\t49500\t42000\t1.9697\t9.2857\t0.15%s\t0.07%s\t100\t0\t4\t8\n' $s $s
        } >num.tsv
        paste num.tsv id.tsv >run/s$s/eval-test.tsv
        # valid: the default student (0.2) over lr 0.1 (0.15), although lr 0.1 is better on test
        { printf 'model\trecall@10\n'
          printf 'teacher\t0.3\nstudent\t0.2\nstudent_lr0.1\t0.15\nstudy\t0.1\nmargin-mse_a0.1\t0.1\nrrd_l0.1\t%s\nrrd_l1\t%s\n' 0.5 0.4
          printf 'teacher_q8\t0.3\nstudent_q4\t0.1\n'
        } >v.tsv
        paste v.tsv <(cut -f1 id.tsv) >run/s$s/eval-valid.tsv
    done
}

# set_cell FILE MODEL COLUMN VALUE: one cell of an evaluation, by row and column name
set_cell() {
    awk -F'\t' -v OFS='\t' -v m="$2" -v c="$3" -v v="$4" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i }
        NR > 1 && $1 == m { $k = v } 1' "$1" >"$1.new" && mv "$1.new" "$1"
}

@test "the study's table holds the evaluations' means over seeds, with bytes and compression" {
    run --separate-stderr -0 kd-report --html run/report.html -o run/report.md run
    grep -q '| teacher | 0.3015 ± 0.0007 | 0.2015 ± 0.0007 | 5.00 ± 0.00 | 9.00 ± 0.00 | 97500 | 390000 | 1.00× |' run/report.md
    grep -q '| plain student (lr × reg chosen on valid) | 0.2015 ± 0.0007 | .* | 49500 | 198000 | 1.97× |' run/report.md
    [[ $output == *"teacher"*"0.3015 ± 0.0007"* ]]
}

@test "each method's knob is chosen on validation, not test, and its gap closed computed from it" {
    kd-report -o run/report.md run >/dev/null
    # valid prefers rrd_l0.1 (0.5 > 0.4) although rrd_l1 is better on test
    grep -q 'distilled: rrd (knob chosen on valid) | 0.2515 ± 0.0007' run/report.md
    # gap closed = (0.251 - 0.201) / (0.301 - 0.201) = 50% for both seeds, t and bootstrap
    grep -q '| l0.1 l0.1 | 198000 | +0.0500 (+0.0500 … +0.0500) | +0.0500 (+0.0500 … +0.0500) | 50% (t 50% … 50%; bootstrap 50% … 50%)' run/report.md
    # the study's margin-MSE is below the student in both seeds
    grep 'the study' run/report.md | grep -q -- '-20%'
    grep -q 'Recall@10: teacher − plain student = +0.1000 .*: the teacher is significantly better (5%)' run/report.md
}

@test "the plain student is chosen per seed on valid among the lr x reg runs, and the report says which" {
    kd-report -o run/report.md run >/dev/null
    # valid chose the default lr in both seeds, although lr 0.1 is better on test
    grep -q '| 1 | 2 | 0.05 | 0.01 | 0.2000 | 0.2010 | 198000 |' run/report.md
    grep -q '| 2 | 2 | 0.05 | 0.01 | 0.2000 | 0.2020 | 198000 |' run/report.md
    # valid prefers lr 0.1 in seed 2: it becomes that seed's plain student, the gap follows
    set_cell run/s2/eval-valid.tsv student_lr0.1 recall@10 0.25
    kd-report -o run/report.md run >/dev/null
    grep -q '| 2 | 2 | 0.1 | 0.01 | 0.2500 | 0.2120 | 198000 |' run/report.md
    grep -q '| plain student (lr × reg chosen on valid) | 0.2065 ± 0.0078 |' run/report.md
    # a tie on valid keeps the first run in the evaluation's order
    set_cell run/s2/eval-valid.tsv student_lr0.1 recall@10 0.2
    kd-report -o run/report.md run >/dev/null
    grep -q '| 2 | 2 | 0.05 | 0.01 | 0.2000 |' run/report.md
}

@test "where the teacher does not beat the plain student, no ratio: Δ with intervals instead" {
    # teacher and student tie: +0.004 and -0.003 over the two seeds
    set_cell run/s1/eval-test.tsv teacher recall@10 0.205
    set_cell run/s2/eval-test.tsv teacher recall@10 0.199
    set_cell run/s1/eval-test.tsv teacher ndcg@10 0.100
    set_cell run/s2/eval-test.tsv teacher ndcg@10 0.104
    run --separate-stderr -0 kd-report -o run/report.md run
    grep -q '^- Recall@10: teacher − plain student = +0.0005 (95% CI .*), paired t-test p = .* over 2 seeds: \*\*the teacher does not significantly beat the plain student\*\*' run/report.md
    grep -q '^- NDCG@10: .*\*\*the teacher does not significantly beat the plain student\*\*' run/report.md
    # every method's row: Δ with its interval, and no gap-closed figure
    row=$(grep '^| distilled: rrd' run/report.md | sed -n 2p)
    [[ $row == *"| +0.0500 (+0.0500 … +0.0500) | +0.0500 (+0.0500 … +0.0500) | — (teacher not significantly better) | — (teacher not significantly better) |"* ]]
    ! grep -q '% (t ' run/report.md || false
    [[ $output == *"does not significantly beat"* ]]
    # one gap significant, the other not: a ratio only where it is
    set_cell run/s1/eval-test.tsv teacher ndcg@10 0.201
    set_cell run/s2/eval-test.tsv teacher ndcg@10 0.202
    kd-report -o run/report.md run >/dev/null
    row=$(grep '^| distilled: rrd' run/report.md | sed -n 2p)
    [[ $row == *"| — (teacher not significantly better) | 50% (t 50% … 50%; bootstrap 50% … 50%) |"* ]]
}

@test "Recall@10 against bytes: quantised models beside their sources, and the frontier" {
    run --separate-stderr -0 kd-report -o run/report.md run
    grep -q '^| teacher | 390000 | 1.00× | 0.3015 (0.2951 … 0.3079) | .* | dominated by teacher int8-asym (no larger; Δ +0.0015, not significantly better: p = ' run/report.md
    grep -q '^| teacher, int8-asym | 114000 | 3.42× | 0.3000 (.*) | .* | on the frontier |' run/report.md
    grep -q '^| plain student (chosen on valid), int4-asym | 42000 | 9.29× | 0.1515 (.*) | .* | on the frontier |' run/report.md
    # the best 32-dim float student is not significantly better than the smaller int8 teacher
    grep -q '^| distilled: rrd (knob chosen on valid) | 198000 | 1.97× | .* | dominated by teacher int8-asym (no larger; Δ -0.0485' run/report.md
    grep -q '^| distilled: margin-mse (knob chosen on valid) | 198000 | .* | dominated by teacher int8-asym (no larger; Δ -0.1085' run/report.md
    grep -q '^- 42000 bytes (9.29× smaller than the teacher) up to 113999: \*\*plain student (chosen on valid), int4-asym\*\*' run/report.md
    grep -q '^- 114000 bytes (3.42× smaller than the teacher) and more: \*\*teacher, int8-asym\*\*, test Recall@10 0.3000' run/report.md
    [[ $output == *"Recall@10 (test, 95% CI)"*"on the frontier"* ]]
    # without the int8 teacher: at equal bytes the more accurate dominates, and the teacher
    # significantly beats every smaller model
    for s in 1 2; do sed -i '/^teacher_q8\t/d' run/s$s/eval-test.tsv; done
    kd-report -o run/report.md run >/dev/null
    grep -q '^| distilled: margin-mse (knob chosen on valid) | 198000 | .* | dominated by rrd (no larger; Δ -0.0600' run/report.md
    grep -q '^| distilled: rrd (knob chosen on valid) | 198000 | .* | on the frontier |' run/report.md
    grep -q '^| teacher | 390000 | .* | on the frontier |' run/report.md
    # the quantised plain student is that of the chosen one: none when valid chose lr 0.1
    set_cell run/s1/eval-valid.tsv student_lr0.1 recall@10 0.9
    set_cell run/s2/eval-valid.tsv student_lr0.1 recall@10 0.9
    kd-report -o run/report.md run >/dev/null
    ! grep -q 'int4-asym' run/report.md || false
}

@test "the study's run is told from the margin-mse grid by its training settings" {
    kd-report -o run/report.md run >/dev/null
    # alpha and lr come from the study model's provenance
    grep -q "| distilled: the study's margin-MSE (α 0.5, lr 0.01) | 0.1815 ± 0.0007" run/report.md
    # the grid holds only the model trained like the plain student
    grep -q '| distilled: margin-mse (knob chosen on valid) | 0.1915 ± 0.0007' run/report.md
    grep '^| distilled: margin-mse' run/report.md | sed -n 2p | grep -q '| a0.1 a0.1 |'
}

@test "the report is the same when every model file and label is swapped with another's" {
    kd-report --html run/report.html -o run/report.md run >run/report.txt
    # the same models under each other's names: teacher -> student -> student_lr0.1 -> teacher,
    # study <-> grid, l0.1 <-> l1, the two quantised ones
    swap=(student student_lr0.1 teacher margin-mse_a0.1 study rrd_l1 rrd_l0.1 student_q4 teacher_q8)
    for s in 1 2; do
        mkdir -p swapped/s$s
        cp run/s$s/data.kd swapped/s$s/d0.kd
        i=0
        for m in $ORDER; do cp run/s$s/$m.kd swapped/s$s/${swap[$i]}.kd; i=$((i + 1)); done
        # the evaluations' labels follow the file names
        i=0
        for m in $ORDER; do echo "$m ${swap[$i]}"; i=$((i + 1)); done >map
        for t in eval-test eval-valid; do
            awk -F'\t' -v OFS='\t' 'NR == FNR { to[$1] = $2; next } FNR > 1 { $1 = to[$1] } 1' FS=' ' map FS='\t' \
                run/s$s/$t.tsv >swapped/s$s/$t.tsv
        done
    done
    ! cmp -s run/s1/eval-test.tsv swapped/s1/eval-test.tsv || false
    kd-report --html swapped/report.html -o swapped/report.md swapped >swapped/report.txt
    for f in report.md report.html report.txt recall-vs-bytes.svg valid-curves.svg loss-curves.svg latency.svg; do
        cmp run/$f swapped/$f
    done
}

@test "the verdict follows a paired test across seeds" {
    for s in 3 4 5; do cp -r run/s1 run/s$s; done
    kd-report -o run/report.md run >/dev/null
    grep '^| distilled: rrd' run/report.md | sed -n 2p | grep -q 'positive transfer'
    grep "^| distilled: the study" run/report.md | sed -n 2p | grep -q 'negative transfer'
}

@test "the bootstrap over seeds is reproducible: the same report bytes on every run, for few seeds and many" {
    # 2 seeds: exact (all 4 resamples); 8 seeds: drawn from the fixed stream
    kd-report --html run/a.html -o run/a.md run >run/a.txt
    kd-report --html run/b.html -o run/b.md run >run/b.txt
    cmp run/a.md run/b.md && cmp run/a.html run/b.html && cmp run/a.txt run/b.txt
    for s in 3 4 5 6 7 8; do cp -r run/s$((s % 2 + 1)) run/s$s; done
    # vary the distilled model so the resamples' means differ
    for s in 3 4 5 6 7 8; do set_cell run/s$s/eval-test.tsv rrd_l0.1 recall@10 0.2$((s + 1)); done
    kd-report -o run/c.md run >/dev/null
    kd-report -o run/d.md run >/dev/null
    cmp run/c.md run/d.md
    row=$(grep '^| distilled: rrd' run/c.md | sed -n 2p)
    [[ $row == *"; bootstrap "*"% … "*"%)"* ]]
    grep -q '(n = 8)' run/c.md
}

@test "the HTML and every SVG are well-formed XML, with no script" {
    kd-report --html run/report.html -o run/report.md run >/dev/null
    xmllint --noout run/report.html
    for f in run/*.svg; do xmllint --noout "$f"; done
    ! grep -qi '<script' run/report.html || false
    [ "$(grep -c '<svg ' run/report.html)" -eq 4 ]
}

@test "a directory without seeds, or without a teacher, is a clear error" {
    mkdir empty
    run --separate-stderr -1 kd-report -o r.md empty
    [ "$stderr" = "kd-report: empty: no seed directories (s1, s2, ...)" ]
    sed -i '/^teacher/d' run/s1/eval-test.tsv
    run --separate-stderr -1 kd-report -o r.md run
    [ "$stderr" = "kd-report: run/s1: the evaluation has no 'teacher' or no 'student' model" ]
    [ ! -e r.md ]
}

@test "an evaluation without the identity columns, or a model that is not there, is refused" {
    cut -f1-13 run/s2/eval-test.tsv >t && mv t run/s2/eval-test.tsv
    run --separate-stderr -1 kd-report -o r.md run
    [[ $stderr == "kd-report: run/s2/eval-test.tsv: evaluations need the columns model, recall@10, id, role,"* ]]
    one_line
    rm -r run/s2 run/s1/rrd_l1.kd
    run --separate-stderr -1 kd-report -o r.md run
    [[ $stderr == "kd-report: run/s1/eval-test.tsv: model 'rrd_l1' ("*"): no model file with this content ID in run/s1" ]]
    [ ! -e r.md ]
}

# settings S: kd-eval's settings column of seed S's models appended to its evaluation
with_settings() {
    local d=run/s$1
    kd-eval --no-timing -k 10 --reference $d/teacher.kd $d/data.kd $(for m in $ORDER; do echo $d/$m.kd; done) >real.tsv
    paste $d/eval-test.tsv <(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i } { print $c["settings"] }' real.tsv) >t
    mv t $d/eval-test.tsv
}

@test "models of one method that differ in more than the knob are refused, not chosen among" {
    with_settings 1
    with_settings 2
    # the pipeline's grid: rrd at lambda 0.1 and 1 share their settings; the study's margin-MSE
    # (another lr and loss than the margin-mse grid) is told apart and never compared
    [ "$(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i } $1 ~ /^rrd_/ { print $c["settings"] }' run/s1/eval-test.tsv | sort -u | wc -l)" = 1 ]
    run --separate-stderr -0 kd-report -o r.md run
    # rrd_l1 of seed 1 becomes an rrd trained with another --topk
    kd-distill -q --teacher run/s1/teacher.kd --method rrd --lambda 1 --topk 3 --dim 4 --epochs 2 --seed 1 run/s1/data.kd -o run/s1/rrd_l1.kd
    kd-eval --no-timing -k 10 run/s1/data.kd run/s1/rrd_l1.kd >k.tsv
    id=$(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i } NR == 2 { print $c["id"] }' k.tsv)
    st=$(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i } NR == 2 { print $c["settings"] }' k.tsv)
    set_cell run/s1/eval-test.tsv rrd_l1 id "$id"
    set_cell run/s1/eval-test.tsv rrd_l1 settings "$st"
    cp r.md r.before
    run --separate-stderr -1 kd-report -o r.md run
    [ "$stderr" = "kd-report: run/s1: rrd models 'rrd_l0.1' and 'rrd_l1' differ in settings other than lambda (a method's line chooses among knob values only: evaluate each configuration in a directory of its own)" ]
    cmp r.md r.before
    # an evaluation without the column (an older kd-eval) is not checked
    cut -f1-$(( $(head -1 run/s1/eval-test.tsv | tr '\t' '\n' | wc -l) - 1 )) run/s1/eval-test.tsv >t && mv t run/s1/eval-test.tsv
    run --separate-stderr -0 kd-report -o r.md run
}

@test "a failed write of stdout is reported with its reason" {
    [ -w /dev/full ] || skip "no /dev/full"
    run --separate-stderr -1 bash -c 'kd-report -o run/report.md run >/dev/full'
    [ "$stderr" = "kd-report: <stdout>: write failed: No space left on device" ]
}
