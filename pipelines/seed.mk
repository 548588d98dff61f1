# The default pipeline: the study on the built-in synthetic data, one dataset per seed.
#   make report [SEEDS="1 2 3"] [GEN_FLAGS="--users 2000 ..."] [ALPHA=0.3] ...
PIPELINE  ?= seed
BUILD     ?= build
GEN_FLAGS ?=

define seed_data
$$(eval $$(call kd_args,data/$(PIPELINE)/s$(1)/.args/data,synth --seed $(1) $(GEN_FLAGS)))
data/$(PIPELINE)/s$(1)/data.kd: data/$(PIPELINE)/s$(1)/.args/data $$(BUILD)/bin/kd-gen
	$$(BUILD)/bin/kd-gen $$(ARGS.data/$(PIPELINE)/s$(1)/.args/data) --cache $$(KD_CACHE) --label "data seed=$(1)" -o $$@
endef

include $(dir $(lastword $(MAKEFILE_LIST)))study.mk
$(foreach s,$(SEEDS),$(eval $(call seed_data,$(s))))
