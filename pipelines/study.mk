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
ALPHAS      ?= 0.03 0.1 0.3
LAMBDAS     ?= 0.1 0.3 1
METHODS     ?= margin-mse rd rrd ce dcd
DISTILL_FLAGS ?=
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
$(eval $(call kd_model,student,kd-train,student,--dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $$*))
$(eval $(call kd_model,study,kd-distill,study margin-mse,--method margin-mse --alpha $(ALPHA) --temperature $(TEMPERATURE) \
    --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $$* $(DISTILL_FLAGS) $(STUDY_FLAGS)))

# the grid: each method at each value of its knob, <method>_a<alpha> for margin-mse and
# <method>_l<lambda> for the others; the report picks one value per seed on validation
knob_values = $(if $(filter margin-mse,$(1)),$(ALPHAS),$(LAMBDAS))
knob_name   = $(if $(filter margin-mse,$(1)),a,l)
knob_flag   = $(if $(filter margin-mse,$(1)),--alpha,--lambda)
$(foreach m,$(METHODS),$(foreach v,$(call knob_values,$(m)),$(eval $(call kd_model,$(m)_$(call knob_name,$(m))$(v),kd-distill,$(m) $(v),\
    --method $(m) $(call knob_flag,$(m)) $(v) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $$* $(DISTILL_FLAGS)))))

# evaluation of every model of the seed (a pattern rule, as two files come from one run)
$(PDIR)/s%/eval-test.tsv $(PDIR)/s%/eval-test-users.tsv: $(PDIR)/s%/data.kd $(seed_models) $(BIN)/kd-eval
	$(RUN) $(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval test seed=$*" -k 10,20 --per-user $(PDIR)/s$*/eval-test-users.tsv --reference $(PDIR)/s$*/teacher.kd $(filter %.kd,$^) -o $(PDIR)/s$*/eval-test.tsv

$(SEEDS:%=$(PDIR)/s%/eval-valid.tsv): $(PDIR)/s%/eval-valid.tsv: $(PDIR)/s%/data.kd $(seed_models) $(BIN)/kd-eval
	$(RUN) $(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval valid seed=$*" --no-timing --split valid -k 10 $(filter %.kd,$^) -o $@
