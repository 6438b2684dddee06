# One image for every service; docker-compose.yml picks the command. CPU torch by default:
# build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 for the gpu worker.
FROM python:3.11-slim
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /app
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY labeler ./labeler
COPY workers ./workers
COPY migrations ./migrations
RUN pip install --no-cache-dir -e .
ENV LABELER_DATA_DIR=/data
ENTRYPOINT ["labeler"]
