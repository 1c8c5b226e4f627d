"""What each job asks a scheduler for: the GPU stages' requests (``gpu``), steps 5-8's
requests derived from the data sizes (``cpu``), and the sizes known before any job runs
(``known_sizes``), which the config checks read too."""
