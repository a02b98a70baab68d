# The code location's image (for deploy/k8s/values.yaml): the package with its production extras.
FROM python:3.11-slim
WORKDIR /app
# libltdl7: the ODBC driver bundled with mssql-python loads it (SQL Server, the production warehouse)
RUN apt-get update && apt-get install -y --no-install-recommends libltdl7 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.cfg README.md workspace.yaml ./
COPY belleville_mtss ./belleville_mtss
RUN pip install --no-cache-dir '.[deploy,k8s,mssql]'
EXPOSE 3030
CMD ["dagster", "api", "grpc", "-m", "belleville_mtss.definitions", "-h", "0.0.0.0", "-p", "3030"]
