#!/usr/bin/env node
/**
 * The CDK app: one Spillway stack (`-c shape=new|existing|new-aurora|existing-aurora|localstack`),
 * configured from CDK context (cdk.json, `-c name=value`), checked with the cdk-nag AwsSolutions
 * pack. Synthesis needs no AWS credentials in any shape.
 */
import { App } from 'aws-cdk-lib';
import { addSpillwayApp } from '../lib/app.js';

addSpillwayApp(new App());
