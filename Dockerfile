# One image for the web server and the Celery worker (see docker-compose.yml).
# torch from the registry is the CUDA build: it uses a GPU when the container
# is given one (docker-compose.gpu.yml) and runs on the CPU otherwise.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MASKROOM_HOME=/data

WORKDIR /app

# The requirements layer (several GB with CUDA) is rebuilt only when they change.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
 && useradd --system --create-home --uid 10001 maskroom \
 && mkdir -p /data \
 && chown maskroom:maskroom /data

USER maskroom
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "backend.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--ws-max-size", "1048576", "--ws-per-message-deflate", "false", \
     "--lifespan", "on"]
