// Test images are built by the same code the demo uses.
export * from '../../src/demo/sample-image.js'
