import { defineStreamSuite } from './stream-suite.js';

defineStreamSuite('builtin');
