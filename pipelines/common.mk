# Shared by the pipelines.
#
# Parameter changes reach Make through per-stage argument files: $(call kd_args,FILE,TEXT)
# makes FILE hold TEXT, touching it only when TEXT changed (so a stage depending on FILE
# reruns exactly when its parameters change), and sets ARGS.FILE to TEXT for the recipe
# (read at parse time, never from the file at run time).
define kd_args
ARGS.$(1) := $(2)
ifneq ($$(file <$(1)),$(2))
$$(shell mkdir -p $(dir $(1)))
$$(file >$(1),$(2))
endif
endef
