// Pipeline board drag and drop: written with the pipeline page.
