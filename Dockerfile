# Courier: one image for every role (serve, worker, migrate).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY domain domain
COPY application application
COPY adapters adapters
COPY entrypoints entrypoints
COPY alembic alembic
COPY alembic.ini ./
RUN pip install --no-cache-dir -e . && useradd --system --home /app courier && chown -R courier /app
USER courier
EXPOSE 8080
ENV COURIER_HOST=0.0.0.0
CMD ["courier", "serve"]
