// Package worker is the Sluice worker: what Kafka Connect splits into a herder and a worker.
// It keeps the cluster's state in sync with the config topic, joins the worker group and takes
// its assignment (the leader computes it: package cluster), starts and stops the connectors
// and tasks assigned here and restarts failed ones, writes their statuses, and answers the
// REST API's operations (package rest calls them; the shapes are package api's). It resolves
// ${env:...} and ${file:...} placeholders and keeps resolved secrets out of logs, statuses and
// answers.
//
// What it builds on, each in a package of its own:
//   - task: the source and sink loops that run one task, behind task.Host;
//   - store: the configs, offsets and statuses topics, read into memory;
//   - kafkaclient: Kafka clients with the worker's settings;
//   - sessionkey: signatures of requests between workers;
//   - cluster: the assignment and the group membership;
//   - convert and transform: converters and single message transforms.
//
// docs/design.md follows a record through all of them.
package worker
