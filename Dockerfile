# The pipeline image for Kubeflow Pipelines / Vertex AI: TFX 1.16 plus this project.
#   docker build -t gcr.io/<project>/i2vae-pipeline:latest . && docker push gcr.io/<project>/i2vae-pipeline:latest
#   .venv/bin/i2vae kubeflow --image gcr.io/<project>/i2vae-pipeline:latest --pipeline-root gs://<bucket>/i2vae \
#       --data gs://<bucket>/amazon-cdsr/cloth_sport --output i2vae_pipeline.json
# Components import the project by module path (run_fn = models.trainer.run_fn), so no
# module wheel is built or staged at compile time.
FROM tensorflow/tfx:1.16.0

WORKDIR /pipeline
COPY pyproject.toml constraints.txt README.md ./
COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
COPY serving/ serving/
COPY configs/ configs/
RUN python -m pip install --no-cache-dir -c constraints.txt -e .

ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONPATH=/pipeline \
    PYTHONHASHSEED=0
