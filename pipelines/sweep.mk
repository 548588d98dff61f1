# The sweep: how every knob moves accuracy, and accuracy against size.  For each seed of
# SEEDS: the synthetic dataset (GEN_FLAGS), the teacher (TEACHER_DIM), then
#   - the study's margin-MSE over SWEEP_ALPHAS x SWEEP_TEMPS (T has no effect: it cancels),
#   - each method of SWEEP_METHODS over SWEEP_LAMBDAS, at STUDENT_DIM,
#   - plain and distilled students (SIZE_METHODS at SIZE_LAMBDA) at every dim of DIMS,
# all evaluated on test; kd-report draws the heatmap, the λ curves and the frontier.
#   make report PIPELINE=sweep [SEEDS="1 2 3"] [DIMS="8 16 32 48"] ...
PIPELINE      := sweep
SEEDS         ?= 1 2 3
GEN_FLAGS     ?=
DIMS          ?= 8 16 32 48
SWEEP_ALPHAS  ?= 0.01 0.03 0.1 0.3 0.5
SWEEP_TEMPS   ?= 0.5 1 2 4
SWEEP_METHODS ?= rd rrd ce dcd
SWEEP_LAMBDAS ?= 0.03 0.1 0.3 1
SIZE_METHODS  ?= rrd dcd
SIZE_LAMBDA   ?= 0.3
TITLE         ?= kdrec sweep: knobs and size (teacher dim $(TEACHER_DIM))
PDIR          ?= data/sweep
REPORT_FLAGS   = --sweep
REPORT_INPUTS  = $(SEEDS:%=$(PDIR)/s%/eval-test.tsv)

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

# every model is named by what varies ($$* is the seed) and labelled by its name
$(eval $(call kd_data,data,synth --seed $$* $(GEN_FLAGS)))
$(eval $(call kd_model,teacher,kd-train,teacher,--dim $(TEACHER_DIM) $(TRAIN_COMMON) --seed $$*))
$(foreach a,$(SWEEP_ALPHAS),$(foreach t,$(SWEEP_TEMPS),$(eval $(call kd_model,mm_a$(a)_t$(t),kd-distill,mm_a$(a)_t$(t),\
    --method margin-mse --margin-loss mse --alpha $(a) --temperature $(t) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $$* $(STUDY_FLAGS)))))
$(foreach m,$(SWEEP_METHODS),$(foreach l,$(SWEEP_LAMBDAS),$(eval $(call kd_model,$(m)_l$(l),kd-distill,$(m)_l$(l),\
    --method $(m) --lambda $(l) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $$*))))
$(foreach d,$(DIMS),$(eval $(call kd_model,dim$(d)_student,kd-train,dim$(d)_student,--dim $(d) $(TRAIN_COMMON) --seed $$*)))
$(foreach d,$(DIMS),$(foreach m,$(SIZE_METHODS),$(eval $(call kd_model,dim$(d)_$(m),kd-distill,dim$(d)_$(m),\
    --method $(m) --lambda $(SIZE_LAMBDA) --dim $(d) $(TRAIN_COMMON) --seed $$*))))

$(SEEDS:%=$(PDIR)/s%/eval-test.tsv): $(PDIR)/s%/eval-test.tsv: $(PDIR)/s%/data.kd $(seed_models) $(BIN)/kd-eval
	$(RUN) $(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval test seed=$*" --no-timing -k 10 $(filter %.kd,$^) -o $@
