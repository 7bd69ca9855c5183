# One image for every service of the suite; the command picks the service (lampo-<name>).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --system --uid 10001 lampo
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt
COPY libs ./libs
COPY services ./services
# Editable installs keep each service's migrations/ folder next to its code.
RUN pip install --no-deps -e libs $(for s in services/*/; do printf -- '-e %s ' "$s"; done)
USER lampo
ENV LAMPO_HTTP_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=6 CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"LAMPO_HTTP_PORT\", \"8080\")}/health/ready', timeout=2)"
CMD ["lampo", "--help"]
