# The study's DAG for each seed, shared by the pipelines: given $(PDIR)/s<seed>/data.kd
# (made by the including pipeline with kd_data), train a teacher and a plain student, distill
# students with the study's margin-MSE and every method over its knob grid, evaluate
# everything on valid and test, and report.  Each stage is a tool run with --cache, so a stage
# whose binary, parameters and input contents are unchanged comes from $(KD_CACHE); each has
# an argument file (common.mk), so `make report ALPHA=0.3` reruns exactly the stages that use
# ALPHA and what depends on them.

SEEDS       ?= 1 2 3 4 5
ALPHA       ?= 0.5
TEMPERATURE ?= 1
# margin-mse's grid is the soft loss's (kd-distill's default: alpha is the teacher's share of
# the pair label, 0..1); the study's own margin-MSE run above keeps the notebook's loss
ALPHAS      ?= 0.25 0.5 1
LAMBDAS     ?= 0.1 0.3 1
METHODS     ?= margin-mse rd rrd ce dcd rce dcd-item
DISTILL_FLAGS ?=
# The plain student gets a tuning budget of its own, chosen per seed on valid like a method's
# knob: every (lr, reg) of PLAIN_LRS x PLAIN_REGS.  The grid brackets kd-train's defaults
# (LR, REG) by a factor 2 (lr) and 3 (reg) on each side, so a chosen point on the edge of the
# grid shows that the baseline wants more room; 9 runs, against 3 knob values per method, so
# the baseline is never the less tuned side.  (LR, REG) itself is the model `student`, the
# others student_lr<lr>_reg<reg>.  No grid point may be (lr 0.01, reg REG), the study's own
# settings (STUDY_FLAGS): the report tells the study's run by its settings (kd_report.h).
LR          ?= 0.05
REG         ?= 0.01
PLAIN_LRS   ?= 0.025 0.05 0.1
PLAIN_REGS  ?= 0.003 0.01 0.03
# Post-training quantisation, the equal-bytes baseline: each of QUANT_BITS (8, 4; asym, per-row
# scale) of the teacher, of every plain-student run (so the one valid chooses has its own) and
# of every knob value of QUANT_METHODS (those of them in METHODS: METHODS=dcd-item has no dcd
# runs to quantise); evaluated on test only (nothing is chosen among them).
QUANT_BITS    ?= 8 4
QUANT_METHODS ?= dcd
QUANT_FLAGS   ?= --scheme asym
TITLE       ?= kdrec: teacher $(TEACHER_DIM) -> student $(STUDENT_DIM), $(PIPELINE) pipeline
PDIR        ?= data/$(PIPELINE)
REPORT_FLAGS  =
# the per-user file is named so that Make never takes it for an intermediate file
REPORT_INPUTS = $(foreach s,$(SEEDS),$(PDIR)/s$(s)/eval-test.tsv $(PDIR)/s$(s)/eval-test-users.tsv $(PDIR)/s$(s)/eval-valid.tsv)

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

# the teacher's own training flags, after TRAIN_FLAGS: a wide teacher can want another --reg
# or --lr than its student (chosen on valid); empty by default, which changes no argument
TEACHER_FLAGS ?=

# ($$* is the seed in every stage's arguments)
$(eval $(call kd_model,teacher,kd-train,teacher,--dim $(TEACHER_DIM) $(TRAIN_COMMON) $(TEACHER_FLAGS) --seed $$*))
plain_name = $(if $(and $(filter $(LR),$(1)),$(filter $(REG),$(2))),student,student_lr$(1)_reg$(2))
$(foreach lr,$(PLAIN_LRS),$(foreach reg,$(PLAIN_REGS),$(eval $(call kd_model,$(call plain_name,$(lr),$(reg)),kd-train,$(call \
    plain_name,$(lr),$(reg)),--dim $(STUDENT_DIM) $(TRAIN_COMMON) --lr $(lr) --reg $(reg) --seed $$*))))
$(eval $(call kd_model,study,kd-distill,study margin-mse,--method margin-mse --margin-loss mse --alpha $(ALPHA) --temperature $(TEMPERATURE) \
    --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $$* $(DISTILL_FLAGS) $(STUDY_FLAGS)))

# the grid: each method at each value of its knob, <method>_a<alpha> for margin-mse and
# <method>_l<lambda> for the others; the report picks one value per seed on validation
knob_values = $(if $(filter margin-mse,$(1)),$(ALPHAS),$(LAMBDAS))
knob_name   = $(if $(filter margin-mse,$(1)),a,l)
knob_flag   = $(if $(filter margin-mse,$(1)),--margin-loss soft --alpha,--lambda)
$(foreach m,$(METHODS),$(foreach v,$(call knob_values,$(m)),$(eval $(call kd_model,$(m)_$(call knob_name,$(m))$(v),kd-distill,$(m) $(v),\
    --method $(m) $(call knob_flag,$(m)) $(v) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --lr $(LR) --reg $(REG) --seed $$* $(DISTILL_FLAGS)))))

# the quantised models: <model>_q<bits>
quant_sources = teacher $(foreach lr,$(PLAIN_LRS),$(foreach reg,$(PLAIN_REGS),$(call plain_name,$(lr),$(reg)))) \
    $(foreach m,$(filter $(METHODS),$(QUANT_METHODS)),$(foreach v,$(call knob_values,$(m)),$(m)_$(call knob_name,$(m))$(v)))
$(foreach src,$(quant_sources),$(foreach b,$(QUANT_BITS),$(eval $(call kd_quant,$(src)_q$(b),$(src),--bits $(b) $(QUANT_FLAGS)))))

# Single-user latency is timed on a seeded sample of at most LATENCY_USERS test users (every
# one below that): timing all of them cost 2.1 s a 20-dim model on amazon-book's 70,000 users,
# a third of a seed's evaluation, for quantiles that 2,000 draws already pin down
LATENCY_USERS ?= 2000
eval_test_args = -k 10,20 --latency-users $(LATENCY_USERS)
$(eval $(call kd_args_rule,eval-test,$(eval_test_args)))

# evaluation of every model of the seed (a pattern rule, as two files come from one run)
$(PDIR)/s%/eval-test.tsv $(PDIR)/s%/eval-test-users.tsv: $(PDIR)/s%/data.kd $(seed_models) $(seed_qmodels) $(PDIR)/s%/.args/eval-test $(BIN)/kd-eval
	$(RUN) $(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval test seed=$*" $(args.eval-test) --per-user $(PDIR)/s$*/eval-test-users.tsv --reference $(PDIR)/s$*/teacher.kd $(filter %.kd,$^) -o $(PDIR)/s$*/eval-test.tsv

$(SEEDS:%=$(PDIR)/s%/eval-valid.tsv): $(PDIR)/s%/eval-valid.tsv: $(PDIR)/s%/data.kd $(seed_models) $(BIN)/kd-eval
	$(RUN) $(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval valid seed=$*" --no-timing --split valid -k 10 $(filter %.kd,$^) -o $@
