"""Beyond one machine: the lock file, bundles, deploys to other Docker hosts, fleet files."""
