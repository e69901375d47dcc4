# Beacon and UdaConnect on a local minikube cluster; included by the top-level
# Makefile.
# Everything runs in its own minikube profile, so other clusters are untouched.
#
#   make up [ENV=dev|prod] [APPS=beacon|udaconnect]
#                            start the cluster, build, deploy, open the pages
#   make down [APPS=...] | purge
#                            delete the deployment (or one app) | the whole profile
#   make status | logs | url [APPS=...]
#   make organiser-token     UdaConnect's organiser token, for its closed API
#   make check-manifests     render and check the manifests (no cluster needed)

ENV ?= dev
PROFILE ?= beacon
CPUS ?= 2
MEMORY ?= 4g
# minikube's driver (docker, podman, kvm2, qemu, …); empty: minikube picks one.
DRIVER ?=
# The profile runs Calico: minikube's default network ignores NetworkPolicies.
START_FLAGS = --cpus=$(CPUS) --memory=$(MEMORY) --cni=calico $(if $(DRIVER),--driver=$(DRIVER))
# How long `make up` waits for everything to be ready after applying.
WAIT_SECONDS ?= 300

NAMESPACE := beacon
# The apps to deploy (`make up`) or delete (`make down`), with the platform
# they share (the namespace, NATS, the passwords): both by default, or one
# (`APPS=beacon`, `APPS=udaconnect`; a comma or a space between two).
APPS ?= beacon udaconnect
comma := ,
empty :=
space := $(empty) $(empty)
APP_LIST := $(sort $(subst $(comma),$(space),$(APPS)))
ifneq ($(filter-out beacon udaconnect,$(APP_LIST)),)
$(error APPS=$(APPS): the apps are beacon and udaconnect)
endif
ifeq ($(APP_LIST),)
$(error APPS is empty: the apps are beacon and udaconnect)
endif
# The apps, for messages: `beacon and udaconnect`.
APP_NAMES := $(subst $(space), and ,$(APP_LIST))
# What `make down APPS=...` deletes of the app, by its label: every kind the
# manifests hold but the namespace, and the volumes its StatefulSets claimed
# (the manifest tests hold this list to the manifests).
APP_KINDS := deployments,statefulsets,jobs,services,configmaps,secrets,serviceaccounts,networkpolicies,persistentvolumeclaims,horizontalpodautoscalers,poddisruptionbudgets,ingresses
# The objects of those apps and of the platform, by their `part-of` label.
APP_SELECTOR := app.kubernetes.io/part-of in (platform,$(subst $(space),$(comma),$(APP_LIST)))
MINIKUBE := minikube -p $(PROFILE)
# Where `make up` keeps UdaConnect's organiser token (deploy/scripts/secrets.sh).
ORGANISER_ENV := deploy/base/.secrets/organiser.env
# Your kubectl, pinned to the profile's context, when it is 1.27 or later
# (its kustomize reads these manifests); else the one minikube brings.
KUBECTL_MINOR := $(shell kubectl version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p')
KUBECTL := $(if $(shell [ "$(or $(KUBECTL_MINOR),0)" -ge 27 ] && echo yes),kubectl --context=$(PROFILE),$(MINIKUBE) kubectl --)
# The image tag, a hash of the sources it is built from (computed once, on use).
IMAGE_TAG = $(eval IMAGE_TAG := $(shell deploy/scripts/image-tag.sh))$(IMAGE_TAG)
# Addons each overlay needs beyond minikube's defaults.
ADDONS_dev :=
ADDONS_prod := ingress metrics-server
# For the targets that need the cluster: stop early, and say so, when it is not running.
RUNNING = $(MINIKUBE) status >/dev/null 2>&1 \
  || { echo "minikube profile $(PROFILE) is not running: make up starts it"; exit 1; }

.PHONY: up
up: ## Deploy Beacon and UdaConnect to minikube (ENV=dev|prod, APPS=beacon|udaconnect) and open the pages
	@deploy/scripts/prereqs.sh $(ENV)
	@echo "==> minikube profile $(PROFILE) ($(CPUS) CPUs, $(MEMORY) memory when created)"
	@$(MINIKUBE) status >/dev/null 2>&1 \
	  || $(MINIKUBE) start $(START_FLAGS) \
	  || { echo "!! minikube could not start: see docs/kubernetes.md#troubleshooting" >&2; exit 1; }
	@$(MINIKUBE) update-context >/dev/null
	@echo "==> addons: $(or $(ADDONS_$(ENV)),none needed)"
	@for addon in $(ADDONS_$(ENV)); do $(MINIKUBE) addons enable $$addon; done
	@echo "==> image beacon:$(IMAGE_TAG), built inside minikube (the first build takes a few minutes)"
	@$(MINIKUBE) image ls 2>/dev/null | grep "beacon:$(IMAGE_TAG)$$" >/dev/null \
	  || $(MINIKUBE) image build -t beacon:$(IMAGE_TAG) .
	@echo "==> passwords: NATS users, PostgreSQL, UdaConnect's organiser token (generated once, kept in deploy/base/.secrets/)"
	@deploy/scripts/secrets.sh
	@echo "==> applying overlays/$(ENV): the platform (NATS) with $(APP_NAMES)"
	@KUBECTL="$(KUBECTL)" deploy/scripts/apply.sh $(ENV) $(IMAGE_TAG) "$(APP_SELECTOR)"
	@echo "==> waiting until ready (at most $(WAIT_SECONDS)s): NATS, $(subst $(space),$(comma) ,$(APP_LIST))"
	@KUBECTL="$(KUBECTL)" deploy/scripts/wait.sh $(WAIT_SECONDS) $(APP_LIST)
	@echo "==> $(APP_NAMES): running ($(ENV))"
	@$(if $(filter udaconnect,$(APP_LIST)),echo "UdaConnect's API is closed: every call needs a token; make organiser-token prints the organiser's")
	@KUBECTL="$(KUBECTL)" deploy/scripts/url.sh $(PROFILE) --open

.PHONY: down
down: ## Delete the deployment, or one app of it (APPS=beacon|udaconnect); the minikube profile stays
	@$(RUNNING)
ifeq ($(APP_LIST),beacon udaconnect)
	@echo "==> deleting namespace $(NAMESPACE): both apps, NATS and its streams, UdaConnect's database"
	@$(KUBECTL) delete namespace $(NAMESPACE) --ignore-not-found --wait=true
else
	@echo "==> deleting $(APP_NAMES), its volumes too (NATS and the other app stay; make down deletes everything)"
	@$(KUBECTL) delete $(APP_KINDS) -n $(NAMESPACE) -l app.kubernetes.io/part-of=$(APP_LIST) \
	  --ignore-not-found --wait=true
endif

.PHONY: purge
purge: ## Delete the minikube profile and the local generated files
	@echo "==> deleting minikube profile $(PROFILE)"
	@$(MINIKUBE) delete
	@rm -rf deploy/.build deploy/base/.secrets

.PHONY: status
status: ## Show the cluster and the apps' pods, services and autoscaling (APPS=...: one app's, with the platform's)
	@$(MINIKUBE) status || true
	@$(RUNNING)
	@$(KUBECTL) get pods,services,ingresses,hpa,pdb,pvc -n $(NAMESPACE) -o wide -L app.kubernetes.io/part-of \
	  -l '$(APP_SELECTOR)'

.PHONY: logs
logs: ## Follow the logs of every pod, NATS's too (APPS=beacon|udaconnect: one app's; APP=receiver: one kind's)
	@$(RUNNING)
	@$(KUBECTL) logs -n $(NAMESPACE) -f --prefix --tail=20 --max-log-requests=30 \
	  -l '$(if $(APP),app.kubernetes.io/name=$(APP),$(APP_SELECTOR))'

.PHONY: url
url: ## Print the pages' URLs
	@$(RUNNING)
	@KUBECTL="$(KUBECTL)" deploy/scripts/url.sh $(PROFILE)

.PHONY: organiser-token
organiser-token: ## Print UdaConnect's organiser token (generated by make up), which may do everything on its closed API
	@sed -n 's/^UDACONNECT_ORGANISER_TOKEN=//p' $(ORGANISER_ENV) 2>/dev/null | grep . \
	  || { echo "no organiser token yet: make up generates it into $(ORGANISER_ENV)" >&2; exit 1; }

.PHONY: check-manifests
check-manifests: ## Render every overlay and check it: schemas, checkov, yamllint, hadolint, shellcheck
	@deploy/scripts/check-manifests.sh
