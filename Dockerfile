# The image for the Kubernetes manifests in k8s/: Ray's own image, this package installed from this checkout
# (with models/colorizer.keras, the default model, and c2pa-python for --c2pa-cert).
#   docker build -t REGISTRY/colorize:0.1.0-cpu .
#   docker build -t REGISTRY/colorize:0.1.0-gpu --build-arg BASE=rayproject/ray:2.60.0-py311-gpu --build-arg BUILD=gpu .
# BUILD picks TensorFlow's build: cpu (the small CPU-only wheel) or gpu (with its CUDA libraries).
ARG BASE=rayproject/ray:2.60.0-py311
FROM ${BASE}
ARG BUILD=cpu
WORKDIR /home/ray/colorize
COPY --chown=ray:users . .
RUN python -m pip install --no-cache-dir -e ".[${BUILD},c2pa]"
