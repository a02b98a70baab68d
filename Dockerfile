# The code location's image (for deploy/k8s/values.yaml): the package with its production extras.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.cfg README.md workspace.yaml ./
COPY belleville_mtss ./belleville_mtss
RUN pip install --no-cache-dir '.[deploy,k8s]'
EXPOSE 3030
CMD ["dagster", "api", "grpc", "-m", "belleville_mtss.definitions", "-h", "0.0.0.0", "-p", "3030"]
