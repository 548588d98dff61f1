# The sweep: how every knob moves accuracy, and accuracy against size.  For each seed of
# SEEDS: the synthetic dataset (GEN_FLAGS), the teacher (TEACHER_DIM), then
#   - the study's margin-MSE over SWEEP_ALPHAS x SWEEP_TEMPS (T has no effect: it cancels),
#   - each method of SWEEP_METHODS over SWEEP_LAMBDAS, at STUDENT_DIM,
#   - plain and distilled students (SIZE_METHODS at SIZE_LAMBDA) at every dim of DIMS,
# all evaluated on test; kd-report draws the heatmap, the λ curves and the frontier.
#   make report PIPELINE=sweep [SEEDS="1 2 3"] [DIMS="8 16 32 48"] ...
PIPELINE      := sweep
BUILD         ?= build
KD_CACHE      ?= data/cache
SEEDS         ?= 1 2 3
GEN_FLAGS     ?=
TEACHER_DIM   ?= 64
STUDENT_DIM   ?= 32
DIMS          ?= 8 16 32 48
SWEEP_ALPHAS  ?= 0.01 0.03 0.1 0.3 0.5
SWEEP_TEMPS   ?= 0.5 1 2 4
SWEEP_METHODS ?= rd rrd ce dcd
SWEEP_LAMBDAS ?= 0.03 0.1 0.3 1
SIZE_METHODS  ?= rrd dcd
SIZE_LAMBDA   ?= 0.3
EPOCHS        ?= 300
# Early stopping: evaluate every 2 epochs, stop after 15 evaluations (30 epochs) without a
# better valid Recall@10.  Patience 6 stopped on plateaus: on Last.fm the teacher's test
# Recall@10 went 0.17 -> 0.184 with 15 (5 seeds), on the default data 0.217 -> 0.229 (8).
EARLY         ?= --valid-every 2 --patience 15 --select-metric recall@10
TRAIN_FLAGS   ?=
STUDY_FLAGS   ?= --lr 0.01
THREADS       ?= 1
PDIR          ?= data/sweep

BIN   := $(BUILD)/bin
CACHE := --cache $(KD_CACHE)
export KD_STAGE_LOG := $(abspath $(PDIR))/stages.log
TRAIN_COMMON = --epochs $(EPOCHS) $(EARLY) $(TRAIN_FLAGS)

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

# $(call sweep_model,SEED,NAME,TOOL,ARGS): one model stage; NAME.kd in the seed directory
define sweep_model
$$(eval $$(call kd_args,$(PDIR)/s$(1)/.args/$(2),$(4)))
$(PDIR)/s$(1)/$(2).kd: $(PDIR)/s$(1)/data.kd $(if $(filter kd-distill,$(3)),$(PDIR)/s$(1)/teacher.kd) $(PDIR)/s$(1)/.args/$(2) $(BIN)/$(3)
	$(RUN) $(BIN)/$(3) -q --threads $(THREADS) $(CACHE) --label "$(2) seed=$(1)" $(if $(filter kd-distill,$(3)),--teacher $(PDIR)/s$(1)/teacher.kd) $$(ARGS.$(PDIR)/s$(1)/.args/$(2)) $$< -o $$@
SWEEP_MODELS_$(1) += $(2)
endef

define sweep_seed
$$(eval $$(call kd_args,$(PDIR)/s$(1)/.args/data,synth --seed $(1) $(GEN_FLAGS)))
$(PDIR)/s$(1)/data.kd: $(PDIR)/s$(1)/.args/data $(BIN)/kd-gen
	$(RUN) $(BIN)/kd-gen $$(ARGS.$(PDIR)/s$(1)/.args/data) $(CACHE) --label "data seed=$(1)" -o $$@
SWEEP_MODELS_$(1) :=
$$(eval $$(call sweep_model,$(1),teacher,kd-train,--dim $(TEACHER_DIM) $(TRAIN_COMMON) --seed $(1)))
$$(foreach a,$(SWEEP_ALPHAS),$$(foreach t,$(SWEEP_TEMPS),$$(eval $$(call sweep_model,$(1),mm_a$$(a)_t$$(t),kd-distill,--method margin-mse --alpha $$(a) --temperature $$(t) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $(1) $(STUDY_FLAGS)))))
$$(foreach m,$(SWEEP_METHODS),$$(foreach l,$(SWEEP_LAMBDAS),$$(eval $$(call sweep_model,$(1),$$(m)_l$$(l),kd-distill,--method $$(m) --lambda $$(l) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $(1)))))
$$(foreach d,$(DIMS),$$(eval $$(call sweep_model,$(1),dim$$(d)_student,kd-train,--dim $$(d) $(TRAIN_COMMON) --seed $(1))))
$$(foreach d,$(DIMS),$$(foreach m,$(SIZE_METHODS),$$(eval $$(call sweep_model,$(1),dim$$(d)_$$(m),kd-distill,--method $$(m) --lambda $(SIZE_LAMBDA) --dim $$(d) $(TRAIN_COMMON) --seed $(1)))))
$(PDIR)/s$(1)/eval-test.tsv: $(PDIR)/s$(1)/data.kd $$(SWEEP_MODELS_$(1):%=$(PDIR)/s$(1)/%.kd) $(BIN)/kd-eval
	$(RUN) $(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval test seed=$(1)" --no-timing -k 10 $$(filter %.kd,$$^) -o $$@
SWEEP_EVALS += $(PDIR)/s$(1)/eval-test.tsv
endef

SWEEP_EVALS :=
$(foreach s,$(SEEDS),$(eval $(call sweep_seed,$(s))))
$(eval $(call kd_args,$(PDIR)/.args/report,$(SEEDS)))

$(PDIR)/report.md $(PDIR)/report.html $(PDIR)/report.txt &: $(SWEEP_EVALS) $(PDIR)/.args/report $(BIN)/kd-report
	@for d in $(PDIR)/s*; do case " $(SEEDS:%=$(PDIR)/s%) " in *" $$d "*) ;; *) rm -rf "$$d";; esac; done
	$(RUN) $(BIN)/kd-report --sweep --title "kdrec sweep: knobs and size (teacher dim $(TEACHER_DIM))" --stages $(KD_STAGE_LOG) --html $(PDIR)/report.html -o $(PDIR)/report.md $(PDIR) >$(PDIR)/report.txt
	@: >$(KD_STAGE_LOG)

pipeline-report: $(PDIR)/report.md
	@cat $(PDIR)/report.txt
	@echo "report: $(PDIR)/report.md and $(PDIR)/report.html"
