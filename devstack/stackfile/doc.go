// Package stackfile holds the tests that keep the Docker side of commentflow
// right on a machine without Docker: docker-compose.yml (loaded with
// compose-go, the loader Docker Compose itself uses), the shared Dockerfile,
// .dockerignore, redpanda/init.sh (run against a fake rpk) and the Redpanda
// Console configuration. They check the files against each other, against
// go.work and against what the services actually read: each service binary is
// built from the workspace and its --help output lists its variables.
//
// The package has no code of its own; run it with
//
//	go test ./stackfile/   (in devstack/)
package stackfile
