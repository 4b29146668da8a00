// Package deploy holds the scripts and manifests that run a partitioned
// materialize on a cluster (slurm/: sbatch job arrays; k8s/: Indexed Jobs
// and the image's Dockerfile) and the tests that run them: the Slurm
// scripts on a one-node cluster the test starts, the Kubernetes Jobs'
// exact command lines as local processes, both writing to versitygw and
// compared file for file with one local materialize.
package deploy
