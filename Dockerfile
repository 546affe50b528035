# ringtrain with MPI (the MPICH wheel), torch's CPU build and the test dependencies.
#   docker build -t ringtrain .
#   docker run --rm ringtrain                              # the first example: 2 workers train
#   docker run --rm ringtrain python -m pytest -q          # the tests
FROM python:3.11-slim-bookworm

# A C compiler for the optional reduction kernels in csrc/ (without one, NumPy's are used).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# torch from its CPU index: the default wheel on PyPI carries CUDA (gigabytes).
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/ringtrain
COPY . .
RUN pip install --no-cache-dir -e '.[mpi,dev,examples]'

CMD ["ringrun", "-np", "2", "examples/train_digits.py", "--verbose", "2"]
