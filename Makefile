# Conveniences for contributors. Every target is one plain Go or Docker
# command (see the README); nothing here is needed to build or test.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# Benchmarks: every module that has them. BENCHTIME=1x checks they run.
BENCH_PKGS := ./schemas/... ./producer/... ./consumer/... ./gateway/...
BENCHTIME ?= 1s

.PHONY: help up dev test lint bench generate fmt ci

help: ## list the targets (this text)
	@echo "Usage: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

up: ## run the stack on Docker: docker compose up --build
	docker compose up --build

dev: ## run the stack without Docker: go run ./devstack (ARGS="--fresh" etc.)
	go run ./devstack $(ARGS)

test: ## run every module's tests: go test work
	go test work

lint: ## golangci-lint (pinned in tools/go.mod) over every module: .ci/lint
	bash .ci/lint

bench: ## run the benchmarks (BENCHTIME=1s per benchmark)
	go test -run '^$$' -bench . -benchtime $(BENCHTIME) $(BENCH_PKGS)

generate: ## regenerate schemas/comment_gen.go from comment.avsc
	go generate ./schemas/...

fmt: ## gofmt -w every Go file tracked by git
	gofmt -w $$(git ls-files '*.go')

ci: ## run what CI runs: bash .ci/run (gofmt, vet, lint, go test -race work)
	bash .ci/run
