# The default pipeline: the study on the built-in synthetic data, one dataset per seed.
#   make report [SEEDS="1 2 3"] [GEN_FLAGS="--users 2000 ..."] [ALPHA=0.3] ...
PIPELINE  ?= seed
GEN_FLAGS ?=

include $(dir $(lastword $(MAKEFILE_LIST)))study.mk
$(eval $(call kd_data,data,synth --seed $$* $(GEN_FLAGS)))
