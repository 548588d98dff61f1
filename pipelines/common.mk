# Shared by the pipelines (study.mk, sweep.mk): the settings every stage uses, the rule shapes,
# the argument files, the RUN prefix, the stage log and the report.  An including pipeline
# sets PDIR, SEEDS, TITLE, REPORT_INPUTS (recursive: it is read by the report rule below)
# and REPORT_FLAGS first, then defines its stages with kd_data and kd_model.
#
# Every stage is a file in a seed directory, $(PDIR)/s<seed>/, made by a static pattern rule
# whose stem is the seed, so a rule is written once for all seeds.

BUILD       ?= build
KD_CACHE    ?= data/cache
TEACHER_DIM ?= 64
STUDENT_DIM ?= 32
EPOCHS      ?= 300
# Early stopping: evaluate every 2 epochs, stop after 15 evaluations (30 epochs) without a
# better valid Recall@10.  Patience 6 stopped on plateaus: on Last.fm the teacher's test
# Recall@10 went 0.17 -> 0.184 with 15 (5 seeds), on the default data 0.217 -> 0.229 (8).
EARLY       ?= --valid-every 2 --patience 15 --select-metric recall@10
TRAIN_FLAGS ?=
# the study's margin-MSE runs: at the default --lr 0.05 its alpha = 0.5 diverges (the MSE term
# on raw score margins is large), so they train at a smaller rate
STUDY_FLAGS ?= --lr 0.01
# stages run in parallel (make -j), so each tool takes one thread: the results are the
# same for any thread count, this only avoids oversubscribing the cores
THREADS     ?= 1
# RUN prefixes every tool run, e.g. RUN="srun --exact -n1 -c1 --quit-on-interrupt" to run each
# stage as a Slurm step inside an allocation; empty (run locally) by default
RUN         ?=

BIN          := $(BUILD)/bin
CACHE        := --cache $(KD_CACHE)
TRAIN_COMMON  = --epochs $(EPOCHS) $(EARLY) $(TRAIN_FLAGS)
# each tool run with --cache appends its line (label: ran in / cached) here; the report
# counts them and then empties the log for the next run
export KD_STAGE_LOG := $(abspath $(PDIR))/stages.log

# ---- argument files ----------------------------------------------------------------------
# Parameter changes reach Make through argument files, $(PDIR)/s<seed>/.args/NAME holding the
# text of stage NAME's arguments, $(args.NAME).  A file is FORCE'd only when its text changed
# (kd_changed_args), and its recipe rewrites it only then; Make re-stats it after the recipe,
# so a stage depending on it reruns exactly when its parameters change, and since the files
# are written by recipes, never while Make parses, `make -n` writes nothing.  The recipes of
# the stages expand $(args.NAME) themselves: the file is never read back.

# $(call kd_write_args,TEXT): a recipe making $@ hold TEXT, touching it only when TEXT changed.
# Make compares the texts itself ($(file <) reads, never writes), so an unchanged file costs
# no shell: with a hundred argument files, a shell each made a no-op run take a second.
kd_write_args = $(if $(call kd_same,$(file <$@),$(strip $(1))),,@mkdir -p $(@D) && printf '%s\n' '$(subst ','\'',$(strip $(1)))' >$@)
kd_same       = $(and $(findstring x$(1),x$(2)),$(findstring x$(2),x$(1)))

# $(call kd_args_rule,NAME,ARGS): args.NAME = ARGS, in which $$* stands for the seed, and the
# rule of NAME's argument file in every seed directory
define kd_args_rule
args.$(1) = $(strip $(2))
pipeline-args: $(SEEDS:%=$(PDIR)/s%/.args/$(1))
$(SEEDS:%=$(PDIR)/s%/.args/$(1)): $(PDIR)/s%/.args/$(1):
	$$(call kd_write_args,$$(args.$(1)))
$$(call kd_changed_args,$(1)): FORCE
endef

# $(call kd_changed_args,NAME): the argument files of NAME whose text is not what they hold,
# found while Make parses ($(file <) only reads), so only they are FORCE'd: after a complete
# run no argument file is, and `make -n report` lists no stage.  The text of a seed is
# args.NAME's with $$* replaced by the seed, as the recipe's expansion gives it.
kd_stem         := $$*
kd_changed_args  = $(foreach s,$(SEEDS),$(if $(call kd_same,$(file <$(PDIR)/s$(s)/.args/$(1)),$(strip \
                       $(subst $(kd_stem),$(s),$(value args.$(1))))),,$(PDIR)/s$(s)/.args/$(1)))

# ---- stages --------------------------------------------------------------------------------
# $(call kd_data,LABEL,ARGS[,INPUTS]): data.kd in every seed directory: kd-gen ARGS (the seed
# as $$*), reading the files INPUTS
define kd_data
$(call kd_args_rule,data,$(2))
$(SEEDS:%=$(PDIR)/s%/data.kd): $(PDIR)/s%/data.kd: $(PDIR)/s%/.args/data $(BIN)/kd-gen $(3)
	$$(RUN) $(BIN)/kd-gen $$(args.data) $(CACHE) --label "$(1) seed=$$*" -o $$@
endef

# $(call kd_model,NAME,TOOL,LABEL,ARGS): NAME.kd in every seed directory: TOOL (kd-train, or
# kd-distill from the seed's teacher.kd) on the seed's data.kd with ARGS (the seed as $$*),
# its stage labelled "LABEL seed=<seed>".  NAME joins MODELS, in order: the models evaluated.
define kd_model
$(call kd_args_rule,$(1),$(4))
$(SEEDS:%=$(PDIR)/s%/$(1).kd): $(PDIR)/s%/$(1).kd: $(PDIR)/s%/data.kd $(if $(filter kd-distill,$(2)),$(PDIR)/s%/teacher.kd) $(PDIR)/s%/.args/$(1) $(BIN)/$(2)
	$$(RUN) $(BIN)/$(2) -q --threads $(THREADS) $(CACHE) --label "$(3) seed=$$*" $(if $(filter kd-distill,$(2)),--teacher $(PDIR)/s$$*/teacher.kd) $$(args.$(1)) $$< -o $$@
MODELS += $(1)
endef
MODELS :=

# $(call kd_quant,NAME,SOURCE,ARGS): NAME.kd in every seed directory: kd-quant ARGS of the seed's
# SOURCE.kd.  NAME joins QMODELS: evaluated on test beside their sources, never chosen among.
define kd_quant
$(call kd_args_rule,$(1),$(3))
$(SEEDS:%=$(PDIR)/s%/$(1).kd): $(PDIR)/s%/$(1).kd: $(PDIR)/s%/$(2).kd $(PDIR)/s%/.args/$(1) $(BIN)/kd-quant
	$$(RUN) $(BIN)/kd-quant -q $(CACHE) --label "$(1) seed=$$*" $$(args.$(1)) $$< -o $$@
QMODELS += $(1)
endef
QMODELS :=

# every model of a seed directory, as prerequisites of its pattern rules (% is the seed)
seed_models  = $(addprefix $(PDIR)/s%/,$(MODELS:=.kd))
seed_qmodels = $(addprefix $(PDIR)/s%/,$(QMODELS:=.kd))

# ---- the report ----------------------------------------------------------------------------
report_args = $(SEEDS)|$(TITLE)
$(PDIR)/.args/report: $(if $(call kd_same,$(file <$(PDIR)/.args/report),$(strip $(report_args))),,FORCE)
	$(call kd_write_args,$(report_args))

# the report reads every seed directory it finds, so stale seeds are removed first
$(PDIR)/report.md $(PDIR)/report.html $(PDIR)/report.txt &: $(REPORT_INPUTS) $(PDIR)/.args/report $(BIN)/kd-report
	@for d in $(PDIR)/s*; do case " $(SEEDS:%=$(PDIR)/s%) " in *" $$d "*) ;; *) rm -rf "$$d";; esac; done
	$(RUN) $(BIN)/kd-report $(REPORT_FLAGS) --title "$(TITLE)" --stages $(KD_STAGE_LOG) --html $(PDIR)/report.html -o $(PDIR)/report.md $(PDIR) >$(PDIR)/report.txt
	@: >$(KD_STAGE_LOG)

# the argument files brought up to date, then listed: tools/progress.sh runs this, then
# `make -n` with each of them -o (old), since -n takes a FORCE'd file (one whose text changed)
# for remade and so every stage after it for one to run; listed with the Makefile's
# cflags.stamp, which `make report` has brought up to date before
# (each kd_args_rule adds its files as prerequisites)
pipeline-args: $(PDIR)/.args/report
	@printf '%s\n' $^ $(wildcard $(BUILD)/cflags.stamp)

pipeline-report: $(PDIR)/report.md
	@cat $(PDIR)/report.txt
	@echo "report: $(PDIR)/report.md and $(PDIR)/report.html"

.DELETE_ON_ERROR:
.PHONY: pipeline-report pipeline-args FORCE
