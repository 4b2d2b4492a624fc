"""Planted fake secrets: names that a prefix match on framework names would have recorded."""

PLANTED = {
    "TF_TOKEN_app_terraform_io": "FAKE-SECRET-tf-token",          # Terraform, shares TF_
    "TF_CLI_CONFIG_FILE": "/home/u/.terraformrc-FAKE-SECRET",    # Terraform, shares TF_
    "AWS_SECRET_ACCESS_KEY": "FAKE-SECRET-aws",
    "HF_TOKEN": "FAKE-SECRET-hf",
    "TORCH_HUB_TOKEN": "FAKE-SECRET-torch",
    "MXNET_PASSWORD": "FAKE-SECRET-mxnet",
    "CUDA_KEY": "FAKE-SECRET-cuda",
}
