"""Training in the cloud: the SageMaker container contract and (with ``shotfit[aws]``) launching jobs.

``contract`` is what the container and the launcher agree on (paths, channels, hyperparameters, the
metric line); ``container`` is the entry point inside a training job. Nothing here imports boto3
except the launcher's modules.
"""
